"""The retraining recipe, fitted for every fold and for the final model at once.

The recipe is one fine-tune from the active model (``finetune.fine_tune``): every batch mixes
the weighted corrections, balanced by label, with replayed MNIST training images on which the
model is also pulled towards the active model's answers (distillation), so it keeps what it
knew. The K fold candidates and the final model are the same recipe on different rows, and
independent of each other, so they run side by side: one worker process per core, one thread
each. On this project's two cores, busy with other work, a step took 0.78 s in a process of one
thread and 2.7-3.1 s in one of two: a process per core keeps both busy without its threads
waiting on each other, and each fit is the same whatever else runs meanwhile.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from digits import checkpoint as ckpt
from digits.data import mnist
from digits.training import finetune

REPLAY = 6000  # MNIST training images replayed
BATCH_MNIST, BATCH_CORRECTIONS = 96, 32
STEPS_PER_EPOCH = 100
MAX_LR = 1e-3
# Pulls the fine-tune towards the active model on replayed MNIST. 10 held it so close that a
# model with room to learn (the MNIST-only one, on `loop` writers' corrections) gained less than
# a third as much on `validation` writers as at 3, where MNIST test stays as it was.
DISTILL_WEIGHT = 3.0


@dataclass(frozen=True)
class Recipe:
    parent: ckpt.Checkpoint
    replay: mnist.Dataset  # MNIST training images, framed
    corrections: mnist.Dataset  # every correction; a fit picks its rows by weight
    steps: int
    seed: int

    def fit(self, weights: np.ndarray, progress: Any = None) -> nn.Module:
        """Fine-tune on the corrections with ``weights`` above zero, drawn by those weights."""
        rows = weights > 0
        return finetune.fine_tune(
            self.parent,
            [
                finetune.Source(self.replay, BATCH_MNIST, distill=True),
                finetune.Source(
                    mnist.Dataset(self.corrections.images[rows], self.corrections.labels[rows]),
                    BATCH_CORRECTIONS,
                    weights[rows],
                ),
            ],
            steps=self.steps,
            max_lr=MAX_LR,
            seed=self.seed,
            distill_weight=DISTILL_WEIGHT,
            progress=progress,
        )

    def config(self) -> dict[str, Any]:
        return {
            "fine_tune": True,
            "steps": self.steps,
            "max_lr": MAX_LR,
            "distill": DISTILL_WEIGHT,
            "seed": self.seed,
        }


# A worker process's recipe, and the steps done by each fit, shared with the parent.
_WORKER: dict[str, Any] = {}


def _start_worker(recipe: Recipe, steps_done: Any) -> None:
    torch.set_num_threads(1)
    _WORKER["recipe"], _WORKER["steps_done"] = recipe, steps_done


def _fit_in_worker(index: int, weights: np.ndarray) -> dict[str, np.ndarray]:
    # Each fit counts its own steps in its own slot: no lock that a killed worker could hold.
    steps_done = _WORKER["steps_done"]

    def step_done() -> None:
        steps_done[index] += 1

    model = _WORKER["recipe"].fit(weights, progress=step_done)
    return {name: tensor.numpy() for name, tensor in model.state_dict().items()}


def fit_all(
    recipe: Recipe,
    weights: list[np.ndarray],
    on_step: Callable[[float], None] | None = None,
) -> list[nn.Module]:
    """One model per weights vector, fitted side by side, under one progress bar of steps;
    ``on_step`` hears the share of all steps done. A worker that dies (killed, out of memory)
    fails the whole fit with BrokenProcessPool rather than leaving it waiting."""
    context = multiprocessing.get_context("spawn")  # a forked torch can hang in its thread pool
    steps_done = context.Array("i", len(weights), lock=False)
    workers = min(len(weights), os.cpu_count() or 1)
    with (
        ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(recipe, steps_done)
        ) as pool,
        tqdm(
            total=recipe.steps * len(weights),
            desc=f"fine-tune {len(weights)} models, {workers} at a time",
            unit="step",
        ) as bar,
    ):
        futures = [pool.submit(_fit_in_worker, i, w) for i, w in enumerate(weights)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=2.0)
            bar.update(sum(steps_done) - bar.n)
            if on_step is not None:
                on_step(bar.n / bar.total)
        states = [future.result() for future in futures]
    models: list[nn.Module] = []
    for state in states:
        model = recipe.parent.build_model()
        model.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        models.append(model.eval())
    return models
