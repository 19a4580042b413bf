"""Calibration: the temperature of the digit outputs and the not-a-digit threshold, both fitted
on held-out data after training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from digits import preprocess
from digits.model import NOT_A_DIGIT


@torch.no_grad()
def logits_of(
    model: nn.Module, images: np.ndarray, device: torch.device, batch: int = 1000
) -> torch.Tensor:
    model.eval()
    chunks = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start : start + batch]).unsqueeze(1).to(device)
        chunks.append(model(preprocess.normalize(x)).float().cpu())
    return torch.cat(chunks)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling: the T minimising held-out NLL (Guo et al., 2017)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.exp().item())


def reject_scores(logits: torch.Tensor) -> np.ndarray:
    """(N, 11) logits -> the probability of the not-a-digit class (uncalibrated softmax)."""
    return F.softmax(logits.float(), dim=1)[:, NOT_A_DIGIT].numpy()


def reject_threshold(logits: torch.Tensor, labels: np.ndarray, *, n_pen_val: int) -> float:
    """The not-a-digit threshold, fitted on `validation` writers' pen drawings (the last
    n_pen_val samples): the highest one that still turns down 95 % of their letters, scribbles
    and digit pairs, so that as few real digits as possible are refused."""
    scores = reject_scores(logits[-n_pen_val:] if n_pen_val else logits)
    tail = labels[-n_pen_val:] if n_pen_val else labels
    rejects = scores[tail == NOT_A_DIGIT]
    if not len(rejects):
        return 0.5
    return float(np.clip(np.quantile(rejects, 0.05), 0.3, 0.95))
