"""Fine-tuning from a checkpoint on a mix of sources (users' corrections, replayed MNIST), with
``train.train_step``: the one optimiser step ``train.fit`` takes too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from digits import checkpoint as ckpt
from digits import preprocess
from digits.data import mnist
from digits.training.config import TrainConfig
from digits.training.train import pick_device, train_step


@dataclass(frozen=True)
class Source:
    """One part of every fine-tuning batch, drawn with replacement by ``weights``."""

    data: mnist.Dataset
    per_batch: int
    weights: np.ndarray | None = None  # None: uniform
    distill: bool = False  # also pull the model towards the teacher's answers on these


def fine_tune(
    parent: ckpt.Checkpoint,
    sources: Sequence[Source],
    *,
    steps: int,
    max_lr: float,
    seed: int,
    weight_decay: float = 5e-4,
    distill_weight: float = 0.0,
    distill_t: float = 2.0,
    params: dict[str, float] | None = None,
    progress: Callable[[], None] | None = None,
) -> nn.Module:
    """Start from ``parent``'s weights; each step one batch made of every source's share.

    BatchNorm keeps the parent's statistics: a few hundred drawings in one style must not move
    the normalisation every other input goes through. Distillation (as in "Learning without
    Forgetting") pulls the model towards the parent's own answers on the sources marked so.
    ``progress``, when given, is called after every step instead of drawing a progress bar.
    """
    device = pick_device()
    torch.manual_seed(seed)
    teacher = parent.build_model().to(device).eval()
    model = parent.build_model().to(device)
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    optimiser = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=max_lr, total_steps=max(steps, 1), pct_start=0.2
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    cpu_gen = torch.Generator().manual_seed(seed)
    params = params or TrainConfig().augment
    tensors = [
        (torch.from_numpy(s.data.images).unsqueeze(1), torch.from_numpy(s.data.labels))
        for s in sources
    ]
    probs = [
        torch.from_numpy(np.asarray(s.weights, np.float64)) if s.weights is not None else None
        for s in sources
    ]
    n_distill = sum(s.per_batch for s in sources if s.distill)

    def distillation(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = F.softmax(teacher(preprocess.normalize(x[:n_distill])) / distill_t, dim=1)
        student = F.log_softmax(logits[:n_distill] / distill_t, dim=1)
        return distill_weight * F.kl_div(student, target, reduction="batchmean") * distill_t**2

    # Distilled sources first, so the batch's head is what the teacher is asked about.
    order = sorted(range(len(sources)), key=lambda i: not sources[i].distill)
    bar = tqdm(
        range(steps), desc="fine-tune", unit="batch", mininterval=2.0, disable=progress is not None
    )
    for _ in bar:
        xs, ys = [], []
        for i in order:
            x_all, y_all = tensors[i]
            weights = probs[i]
            if weights is not None:
                idx = torch.multinomial(weights, sources[i].per_batch, True, generator=cpu_gen)
            else:
                idx = torch.randint(len(y_all), (sources[i].per_batch,), generator=cpu_gen)
            xs.append(x_all[idx])
            ys.append(y_all[idx])
        _, loss = train_step(
            model,
            optimiser,
            scheduler,
            torch.cat(xs).to(device),
            torch.cat(ys).to(device),
            params,
            gen,
            distillation if distill_weight > 0 and n_distill else None,
        )
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if progress is not None:
            progress()
    return model.cpu().eval()
