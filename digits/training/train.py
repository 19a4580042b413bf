"""fit(): MNIST (+ synthetic canvas drawings) -> a calibrated checkpoint.

Every training image goes through ``preprocess.to_model_input`` first, exactly as a served
drawing does; augmentation then perturbs the framed 28x28 inputs in batches on the device.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from digits import checkpoint as ckpt
from digits import preprocess
from digits.data import mnist
from digits.model import NUM_DIGITS, DigitNet
from digits.training import calibration, data
from digits.training.config import TrainConfig

log = logging.getLogger(__name__)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(batch: torch.Tensor, params: dict[str, float], gen: torch.Generator) -> torch.Tensor:
    """Random affine + stroke width changes on (N, 1, 28, 28) inputs in [0, 1]."""
    n, device = batch.shape[0], batch.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=gen, device=device) * (high - low) + low

    angle = uniform(-params["rotate_deg"], params["rotate_deg"]) * math.pi / 180
    scale = 1.0 + uniform(-params["scale"], params["scale"])
    aspect = 1.0 + uniform(-params["scale"], params["scale"]) / 2
    shear = uniform(-params["shear"], params["shear"])
    shift = params["shift_px"] * 2 / preprocess.IMAGE_SIZE
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Inverse map (output -> input coordinates) for affine_grid.
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = cos / (scale * aspect)
    theta[:, 0, 1] = (-sin + shear) / (scale * aspect)
    theta[:, 1, 0] = sin / (scale / aspect)
    theta[:, 1, 1] = cos / (scale / aspect)
    theta[:, 0, 2] = uniform(-shift, shift)
    theta[:, 1, 2] = uniform(-shift, shift)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    choice = torch.rand(n, generator=gen, device=device)
    thicken = (choice < params["p_thicken"]).view(n, 1, 1, 1)
    thin = (
        (choice >= params["p_thicken"]) & (choice < params["p_thicken"] + params["p_thin"])
    ).view(n, 1, 1, 1)
    dilated = F.max_pool2d(out, 3, stride=1, padding=1) * 0.5 + out * 0.5
    eroded = -F.max_pool2d(-out, 2, stride=1, padding=0)
    eroded = F.pad(eroded, (0, 1, 0, 1)) * 0.5 + out * 0.5
    out = torch.where(thicken, dilated, torch.where(thin, eroded, out))
    faint = (torch.rand(n, generator=gen, device=device) < params["p_faint"]).view(n, 1, 1, 1)
    gain = uniform(0.5, 1.0).view(n, 1, 1, 1)
    out = torch.where(faint, out * gain, out)
    peak = out.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return out / peak


def train_step(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    params: dict[str, float],
    gen: torch.Generator,
    extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch of framed inputs: augment, cross-entropy (plus
    ``extra_loss(augmented inputs, logits)`` if given); returns (logits, loss)."""
    x = augment(x, params, gen)
    logits = model(preprocess.normalize(x))
    loss = F.cross_entropy(logits, y)
    if extra_loss is not None:
        loss = loss + extra_loss(x, logits)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    scheduler.step()
    return logits, loss


def widened(state_dict: dict[str, torch.Tensor], num_classes: int) -> dict[str, torch.Tensor]:
    """A 10-digit checkpoint's weights for a network with more outputs: the digit rows are
    kept, a new class starts at zero weight and a bias that makes it unlikely."""
    weight, bias = "classifier.2.weight", "classifier.2.bias"
    have = state_dict[weight].shape[0]
    if have == num_classes:
        return state_dict
    state = dict(state_dict)
    extra = num_classes - have
    state[weight] = torch.cat([state[weight], torch.zeros(extra, state[weight].shape[1])])
    state[bias] = torch.cat([state[bias], torch.full((extra,), float(state[bias].min()) - 4.0)])
    return state


def fit(
    config: TrainConfig,
    output: Path,
    *,
    mnist_dir: Path | None = None,
    cache_dir: Path | None = None,
    extra: mnist.Dataset | None = None,
    init: ckpt.Checkpoint | None = None,
) -> ckpt.Checkpoint:
    """Train, calibrate, save to ``output``; returns the checkpoint.

    ``extra`` (e.g. users' corrections) is mixed into the training data; ``init`` fine-tunes
    from an existing checkpoint instead of starting from scratch.
    """
    from digits.config import get_settings

    cache_dir = cache_dir or get_settings().resolved_cache_dir
    if init is not None:  # a fine-tune keeps the width of the network it starts from
        config = replace(config, width=int(init.model_args["width"]))
    seed_everything(config.seed)
    device = pick_device()
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()

    framed = data.framed_mnist(
        "train", mnist_dir, cache_dir, limit=2000 if config.dry_run else None
    )
    train_mnist, val_mnist = data.split(
        framed, min(config.val_size, len(framed.labels) // 5), config.seed
    )
    parts = [train_mnist]
    val_parts = [val_mnist]
    if config.synthetic > 0:
        n_synth = min(config.synthetic, 500) if config.dry_run else config.synthetic
        raw_train = mnist.load_mnist("train", mnist_dir, cache_dir)
        synthetic = data.synthetic_drawings(n_synth, config.seed + 1, cache_dir, raw_train)
        synth_train, synth_val = data.split(synthetic, n_synth // 10, config.seed)
        parts.append(synth_train)
        val_parts.append(synth_val)
    n_pen = 0
    if config.num_classes > NUM_DIGITS and config.pen_renders > 0:
        pen_train = data.pen_drawings("train", config, cache_dir)
        pen_val = data.pen_drawings("validation", config, cache_dir)
        parts.append(pen_train)
        val_parts.append(pen_val)
        n_pen = len(pen_train.labels)
    if extra is not None and len(extra.labels):
        parts.append(extra)
    train_images = np.concatenate([p.images for p in parts]).astype(np.float32)
    train_labels = np.concatenate([p.labels for p in parts]).astype(np.int64)
    val_images = np.concatenate([p.images for p in val_parts]).astype(np.float32)
    val_labels = np.concatenate([p.labels for p in val_parts]).astype(np.int64)

    model_args: dict[str, Any] = {
        "width": config.width,
        "dropout": config.dropout,
        "num_classes": config.num_classes,
    }
    model = DigitNet(**model_args).to(device)
    if init is not None:
        model.load_state_dict(widened(init.state_dict, config.num_classes))
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
    epochs = 1 if config.dry_run else config.epochs
    if config.dry_run:
        steps_per_epoch = min(steps_per_epoch, 20)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=config.max_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=0.2,
    )
    gen = torch.Generator(device=device).manual_seed(config.seed)
    x_all = torch.from_numpy(train_images).unsqueeze(1)
    y_all = torch.from_numpy(train_labels)
    history = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(
            len(y_all), generator=torch.Generator().manual_seed(config.seed + epoch)
        )
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="batch",
            mininterval=2.0,
        )
        seen = correct = 0
        loss_sum = 0.0
        for step in bar:
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            y = y_all[idx].to(device)
            logits, loss = train_step(
                model, optimiser, scheduler, x_all[idx].to(device), y, config.augment, gen
            )
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += loss.item() * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        val_acc = float(
            (
                calibration.logits_of(model, val_mnist.images, device).argmax(1).numpy()
                == val_mnist.labels
            ).mean()
        )
        # Early stopping on the whole validation mix (real pen writers included): the
        # epoch that reads it best is kept.
        val_all = float(
            (
                calibration.logits_of(model, val_images, device).argmax(1).numpy() == val_labels
            ).mean()
        )
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": loss_sum / seen,
                "val_mnist_accuracy": val_acc,
                "val_accuracy": val_all,
            }
        )
        log.info(
            "epoch %d: train loss %.4f, MNIST validation accuracy %.4f, all %.4f",
            epoch + 1,
            loss_sum / seen,
            val_acc,
            val_all,
        )
        if best is None or val_all > best[0]:
            best = (val_all, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})

    assert best is not None
    model.load_state_dict(best[2])

    val_logits = calibration.logits_of(model, val_images, device)
    is_digit = val_labels < NUM_DIGITS
    digit_logits = val_logits[torch.from_numpy(is_digit), :NUM_DIGITS]
    temperature = calibration.fit_temperature(digit_logits, torch.from_numpy(val_labels[is_digit]))
    model.cpu()
    elapsed = time.perf_counter() - started
    metrics: dict[str, Any] = {
        "val_accuracy": float((digit_logits.argmax(1).numpy() == val_labels[is_digit]).mean()),
        "val_mnist_accuracy": history[best[1]]["val_mnist_accuracy"],
        "best_epoch": best[1] + 1,
        "train_seconds": round(elapsed, 1),
        "device": device.type,
        "history": history,
    }
    if config.num_classes > NUM_DIGITS:
        metrics["not_a_digit_threshold"] = calibration.reject_threshold(
            val_logits, val_labels, n_pen_val=len(val_parts[-1].labels) if n_pen else 0
        )
    result = ckpt.from_model(
        model,
        model_args,
        temperature=temperature,
        metrics=metrics,
        train_config=asdict(config),
        parent=init.version if init is not None else None,
        data={
            "mnist_train": len(train_mnist.labels),
            "synthetic": len(parts[1].labels) if config.synthetic > 0 else 0,
            "pen": n_pen,
            "extra": 0 if extra is None else len(extra.labels),
            "validation": len(val_labels),
        },
    )
    ckpt.save(result, output)
    log.info(
        "saved %s (version %s, T=%.3f) in %.0f s", output, result.version, temperature, elapsed
    )
    return result
