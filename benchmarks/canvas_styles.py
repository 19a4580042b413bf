"""Where a model fails on the canvas benchmark: accuracy per glyph style, encoding, size, brush.

    .venv/bin/python benchmarks/canvas_styles.py var/runs/model.pt --n 1000 --errors /tmp/err.png

The benchmark is the same one `digits evaluate` reports (digits.synth.benchmark_items); this
breaks it down so the weak spots (a style the model never saw, thin brushes, tiny digits) show.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from digits import preprocess
from digits.config import SHIPPED_WEIGHTS
from digits.data import mnist
from digits.predict import Predictor
from digits.synth import drawings


def size_bucket(look: drawings.Look) -> str:
    return "small<.45" if look.height < 0.45 else ("big>.8" if look.height > 0.8 else "medium")


def brush_bucket(look: drawings.Look) -> str:
    return "thin<8" if look.brush < 8 else ("thick>24" if look.brush > 24 else "brush8-24")


def table(title: str, groups: dict[str, list[bool]]) -> None:
    print(f"\n{title}")
    for key in sorted(groups):
        hits = groups[key]
        print(f"  {key:<24} {np.mean(hits):7.2%}  (n={len(hits)})")


def error_grid(items: list[drawings.BenchmarkItem], predicted: np.ndarray, path: Path) -> None:
    tiles: list[np.ndarray] = []
    for item, guess in zip(items, predicted, strict=True):
        if guess == item.label or len(tiles) >= 60:
            continue
        tile = Image.fromarray(item.image)
        if tile.mode == "RGBA":
            backdrop = Image.new("RGBA", tile.size, (200, 230, 200, 255))
            backdrop.alpha_composite(tile)
            tile = backdrop
        tile = tile.convert("RGB").resize((96, 96), Image.Resampling.BOX)
        canvas = Image.new("RGB", (100, 112), (128, 128, 128))
        canvas.paste(tile, (2, 2))
        marker = np.asarray(canvas).copy()
        marker[100:, 2 : 2 + 9 * (guess + 1)] = (220, 40, 40)  # red bar: the wrong answer + 1
        marker[106:, 2 : 2 + 9 * (item.label + 1)] = (40, 160, 40)  # green bar: the truth + 1
        tiles.append(marker)
    if not tiles:
        return
    while len(tiles) % 10:
        tiles.append(np.full_like(tiles[0], 128))
    rows = [np.concatenate(tiles[k : k + 10], axis=1) for k in range(0, len(tiles), 10)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--n", type=int, default=1000, help="drawings per mode")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--mnist-dir", type=Path, default=None)
    parser.add_argument("--errors", type=Path, default=None, help="PNG grid of misread drawings")
    args = parser.parse_args()

    predictor = Predictor.from_checkpoint(args.model or SHIPPED_WEIGHTS)
    test = mnist.load_mnist("test", args.mnist_dir)
    for mode in ("normal", "careless"):
        items = drawings.benchmark_items(
            test.images, test.labels, mode=mode, n=args.n, seed=args.seed
        )
        inputs = np.stack([preprocess.to_model_input(item.image) for item in items])
        predicted = predictor.probabilities(inputs).argmax(axis=1)
        hits = predicted == np.array([item.label for item in items])
        print(f"\n=== {mode}: {hits.mean():.2%} of {len(items)}")
        by: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        for item, hit in zip(items, hits, strict=True):
            source = item.source if item.source.startswith("style") else "mnist-redraw"
            by["source"][source].append(bool(hit))
            by["digit"][str(item.label)].append(bool(hit))
            by["encoding"][item.look.encoding].append(bool(hit))
            by["size"][size_bucket(item.look)].append(bool(hit))
            by["brush"][brush_bucket(item.look)].append(bool(hit))
        for name, groups in by.items():
            table(f"by {name}", groups)
        if args.errors is not None:
            path = args.errors.with_name(f"{args.errors.stem}_{mode}{args.errors.suffix}")
            error_grid(items, predicted, path)
            print(f"\nmisread drawings: {path}")


if __name__ == "__main__":
    main()
