"""Train the line model (digits.read.line): a small convolutional and recurrent network read
with CTC, on `train` writers' pen digits and letters composed into numbers as people write them
(digits.synth.pen_numbers), each character slanted and stretched a little and the line drawn
with a brush of random width. Checked on `validation` writers' numbers; exported to ONNX.

    .venv/bin/python -m digits.training.line [--numbers 100000] [--epochs 6] [--out PATH]

The shipped pair: the defaults (digits/weights/line.onnx), and the same from another seed,
``--seed 7 --out digits/weights/line-seed7.onnx`` (digits.read.line.SECOND_LINE_FILE).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from digits import preprocess
from digits.data import mnist, pen
from digits.read import line, numbers
from digits.synth import drawings, pen_numbers

SEED = 20_261_205
LENGTHS = (1, 8)
LETTER_SHARE = 0.25  # numbers with one letter in place of a digit
GAP_SHARES: dict[pen_numbers.GapStyle, float] = {"touching": 0.4, "normal": 0.35, "wide": 0.25}
BRUSH = (8.0, 30.0)  # canvas pixels, on the 280 px high canvas
SLANT, STRETCH = 0.25, (0.8, 1.2)  # each character's shear (x per unit of y) and x scale
MNIST_HEIGHT = 56  # pixels: MNIST digits are composed at about this height
BATCH = 32
LEARNING_RATE = 2e-3


class LineNet(nn.Module):
    """(N, 1, 32, W) -> (N, W / 4, CLASSES) log-probabilities."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int, pool: tuple[int, int] | None) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            return layers + ([nn.MaxPool2d(pool)] if pool else [])

        self.features = nn.Sequential(
            *block(1, 16, (2, 2)),  # 16 x W/2
            *block(16, 32, (2, 2)),  # 8 x W/4
            *block(32, 64, None),
            *block(64, 64, (2, 1)),  # 4 x W/4
            *block(64, 96, (2, 1)),  # 2 x W/4
        )
        self.rnn = nn.LSTM(192, 64, batch_first=True, bidirectional=True)
        self.out = nn.Linear(128, line.CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        f = f.flatten(1, 2).transpose(1, 2)  # (N, T, 192)
        f, _ = self.rnn(f)
        return torch.log_softmax(self.out(f), dim=-1)


def _varied(sample: pen.PenSample, rng: np.random.Generator) -> pen.PenSample:
    """The character slanted and stretched a little, as another hand might write it."""
    shear, stretch = rng.uniform(-SLANT, SLANT), rng.uniform(*STRETCH)
    strokes = tuple(
        np.column_stack([(s[:, 0] + shear * (s[:, 1] - 0.5)) * stretch, s[:, 1]])
        for s in sample.strokes
    )
    return dataclasses.replace(sample, strokes=strokes)


def _labels(samples: Sequence[pen.PenSample]) -> list[int]:
    return [s.digit if s.digit is not None else line.LETTER - 1 for s in samples]


def compose_one(
    writers: dict[str, list[pen.PenSample]],
    letters: dict[str, list[pen.PenSample]],
    rng: np.random.Generator,
    *,
    vary: bool = True,
) -> tuple[np.ndarray, list[int]]:
    """One number of one writer's characters -> (the line model's input as uint8, labels)."""
    names = list(writers)
    writer = names[int(rng.integers(len(names)))]
    own = writers[writer]
    length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    chosen = [own[int(j)] for j in rng.integers(len(own), size=length)]
    if letters.get(writer) and rng.random() < LETTER_SHARE:
        pool = letters[writer]
        chosen[int(rng.integers(length))] = pool[int(rng.integers(len(pool)))]
    if vary:
        chosen = [_varied(s, rng) for s in chosen]
    item = pen_numbers.compose(chosen, rng, pen_numbers.gap_style(rng, GAP_SHARES))
    image = item.image
    if vary:
        image = drawings.render(
            item.strokes,
            canvas=image.shape[1],
            height=image.shape[0],
            brush=float(rng.uniform(*BRUSH)),
            encoding="L-inverted",
        )
    ink, _ = numbers.working_ink(preprocess.ink_map(image))
    return _stored(ink), _labels(item.samples)


def compose_mnist(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """One number of MNIST digits (many writers, one each) placed as pen_numbers places pen
    digits -> (the line model's input as uint8, labels): more shapes of each digit than the
    pen writers have."""
    length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    picked = rng.integers(len(images), size=length)
    height = MNIST_HEIGHT
    low, high = pen_numbers.GAPS[pen_numbers.gap_style(rng, GAP_SHARES)]
    placed, x = [], 0
    for k, index in enumerate(picked):
        image = images[index]
        rows = np.flatnonzero(image.max(axis=1) > 25)
        cols = np.flatnonzero(image.max(axis=0) > 25)
        crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        tall = round(height * rng.uniform(0.92, 1.08))
        wide = max(2, round(crop.shape[1] * tall / crop.shape[0] * rng.uniform(*STRETCH)))
        glyph = np.asarray(Image.fromarray(crop).resize((wide, tall), Image.Resampling.BILINEAR))
        if k:
            x += round(rng.uniform(low, high) * height)
        top = round(height * 0.1 + rng.uniform(-0.04, 0.04) * height + height - tall)
        placed.append((glyph, max(top, 0), x))
        x += wide
    canvas = np.zeros((round(height * 1.3), x + 1), np.float32)
    for glyph, top, at in placed:
        window = canvas[top : top + glyph.shape[0], at : at + glyph.shape[1]]
        np.maximum(window, glyph[: window.shape[0]] / 255.0, out=window)
    canvas[canvas < preprocess.NOISE_FLOOR] = 0.0
    return _stored(canvas), [int(labels[i]) for i in picked]


def _stored(ink: np.ndarray) -> np.ndarray:
    """A line's ink -> the line model's input as uint8 (a quarter of the memory of float32)."""
    return np.round(line.line_input(ink).image * 255).astype(np.uint8)


def _characters(
    role: pen.Role,
) -> tuple[dict[str, list[pen.PenSample]], dict[str, list[pen.PenSample]]]:
    return pen_numbers.eligible_writers(role), pen_numbers.writer_letters(role)


def _compose_chunk(
    args: tuple[pen.Role, int, int, int, bool],
) -> list[tuple[np.ndarray, list[int]]]:
    role, seed, start, stop, vary = args
    writers, letters = _characters(role)
    return [
        compose_one(writers, letters, np.random.default_rng([seed, i]), vary=vary)
        for i in range(start, stop)
    ]


def compose_set(
    role: pen.Role, n: int, seed: int, *, vary: bool = True, processes: int = 2
) -> list[tuple[np.ndarray, list[int]]]:
    chunk = 500
    jobs = [(role, seed, s, min(s + chunk, n), vary) for s in range(0, n, chunk)]
    result: list[tuple[np.ndarray, list[int]]] = []
    with Pool(processes) as pool:
        for part in tqdm(
            pool.imap(_compose_chunk, jobs), total=len(jobs), desc=f"composing {role} numbers"
        ):
            result += part
    return result


def _batches(data: list[tuple[np.ndarray, list[int]]], rng: np.random.Generator) -> list[list[int]]:
    """Indices in batches of similar width (little padding), the batches shuffled."""
    order = sorted(range(len(data)), key=lambda i: (data[i][0].shape[1], rng.random()))
    batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    rng.shuffle(batches)
    return batches


def _tensors(
    data: list[tuple[np.ndarray, list[int]]], batch: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(data[i][0].shape[1] for i in batch)
    x = np.zeros((len(batch), 1, line.HEIGHT, width), np.float32)
    for row, i in enumerate(batch):
        x[row, 0, :, : data[i][0].shape[1]] = data[i][0] / 255.0
    targets = torch.tensor([c + 1 for i in batch for c in data[i][1]], dtype=torch.long)
    target_lengths = torch.tensor([len(data[i][1]) for i in batch], dtype=torch.long)
    input_lengths = torch.tensor([data[i][0].shape[1] // line.STRIDE for i in batch])
    return torch.from_numpy(x), targets, input_lengths, target_lengths


def evaluate(model: LineNet, data: list[tuple[np.ndarray, list[int]]]) -> dict[str, float]:
    """Greedy decoding: whole strings right, counts right, letters seen."""
    model.eval()
    right = counted = 0
    with torch.no_grad():
        for image, labels in data:
            out = model(torch.from_numpy(image[None, None] / 255.0).float())[0].numpy()
            said = line.greedy(out)
            right += said == labels
            counted += len(said) == len(labels)
    model.train()
    return {"string_right": right / len(data), "count_right": counted / len(data)}


def export(model: LineNet, out: Path) -> None:
    model.eval()
    dummy = torch.zeros(1, 1, line.HEIGHT, 128)
    torch.onnx.export(
        model,
        (dummy,),
        str(out),
        input_names=["line"],
        output_names=["log_probs"],
        dynamic_axes={"line": {3: "width"}, "log_probs": {1: "columns"}},
        opset_version=17,
        dynamo=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--mnist", type=int, default=0, help="numbers of MNIST training digits")
    parser.add_argument("--mnist-dir", type=Path, default=None, help="the four MNIST files")
    parser.add_argument("--out", type=Path, default=line.LINE_FILE)
    parser.add_argument("--seed", type=int, default=SEED, help="the numbers and the weights drawn")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = compose_set("train", args.numbers, args.seed)
    if args.mnist:
        digits = mnist.load_mnist("train", args.mnist_dir)
        train += [
            compose_mnist(digits.images, digits.labels, rng)
            for _ in tqdm(range(args.mnist), desc="composing MNIST numbers")
        ]
    check = compose_set("validation", 1000, SEED + 1, vary=False)
    model = LineNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(train) / BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LEARNING_RATE, total_steps=steps)
    loss_fn = nn.CTCLoss(blank=line.BLANK, zero_infinity=True)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        total = 0.0
        batches = _batches(train, rng)
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False):
            x, targets, input_lengths, target_lengths = _tensors(train, batch)
            log_probs = model(x).transpose(0, 1)  # CTCLoss wants (T, N, C)
            loss = loss_fn(log_probs, targets, input_lengths, target_lengths)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            total += float(loss)
        figures = evaluate(model, check)
        sys.stdout.write(
            f"epoch {epoch + 1}: loss {total / len(batches):.4f}, validation strings right "
            f"{figures['string_right']:.2%}, counts right {figures['count_right']:.2%} "
            f"({time.perf_counter() - start:.0f} s)\n"
        )
        sys.stdout.flush()
        export(model, args.out)
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
