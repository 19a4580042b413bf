"""MNIST: the four canonical files, from a local folder or downloaded from public mirrors.

Every ``.gz`` file is checked against its SHA-256 before it is parsed, so a truncated download,
a corrupted copy or a wrong file fails with a message that names it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import struct
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

Split = Literal["train", "test"]

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# SHA-256 of the canonical compressed files, as a mirror serves them.
FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
HOW_TO_SUPPLY = (
    "set DIGITS_MNIST_DIR (or pass --mnist-dir) to a folder holding the four canonical MNIST "
    ".gz files, or let `digits` download them when the network is reachable"
)


class DatasetError(RuntimeError):
    """An MNIST file is missing, corrupt, or could not be fetched."""


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, 28, 28) uint8, ink high
    labels: np.ndarray  # (N,) int64


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path) -> None:
    expected = FILES[path.name]
    if not path.exists():
        raise DatasetError(
            f"{path} is missing (expected the canonical {path.name}); {HOW_TO_SUPPLY}"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise DatasetError(
            f"{path} is corrupt or truncated: SHA-256 {actual}, expected {expected} "
            f"({path.stat().st_size} bytes); replace it with the canonical file; {HOW_TO_SUPPLY}"
        )


def _download(name: str, dest: Path, mirrors: tuple[str, ...], timeout: float) -> None:
    errors = []
    for mirror in mirrors:
        url = mirror + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with (
                    tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp,
                    tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False) as bar,
                ):
                    for block in iter(lambda: response.read(1 << 16), b""):
                        tmp.write(block)
                        bar.update(len(block))
            tmp_path = Path(tmp.name)
            if sha256_of(tmp_path) != FILES[name]:
                tmp_path.unlink()
                errors.append(f"{url}: checksum mismatch")
                continue
            tmp_path.replace(dest)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{url}: {exc}")
    raise DatasetError(f"could not download {name}: " + "; ".join(errors) + f"; {HOW_TO_SUPPLY}")


def ensure_files(
    mnist_dir: Path | None = None,
    cache_dir: Path | None = None,
    *,
    mirrors: tuple[str, ...] = MIRRORS,
    timeout: float = 30.0,
) -> Path:
    """Return a folder holding the four verified files.

    A given ``mnist_dir`` (or ``DIGITS_MNIST_DIR``) is read-only: it is checked, never written.
    Otherwise the files are downloaded into ``cache_dir`` (verified copies are reused).
    """
    from digits.config import get_settings

    settings = get_settings()
    local = mnist_dir or settings.mnist_dir
    if local is not None:
        for name in FILES:
            verify(local / name)
        return local
    cache_dir = cache_dir or settings.resolved_cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        path = cache_dir / name
        if path.exists() and sha256_of(path) == FILES[name]:
            continue
        log.info("downloading %s", name)
        _download(name, path, mirrors, timeout)
    return cache_dir


def parse_idx(raw: bytes, *, name: str = "idx") -> np.ndarray:
    """Parse an (uncompressed) idx file of unsigned bytes: magic 0x0000 08 ndim, dims, data."""
    if len(raw) < 4:
        raise DatasetError(f"{name}: too short to be an idx file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DatasetError(
            f"{name}: bad idx header (magic {raw[:4].hex()}, expected 00000801/00000803)"
        )
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DatasetError(
            f"{name}: expected {expected} data bytes for shape {dims}, got {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_gz(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable gzip file ({exc}); {HOW_TO_SUPPLY}") from exc
    return parse_idx(raw, name=str(path))


def load_mnist(
    split: Split, mnist_dir: Path | None = None, cache_dir: Path | None = None
) -> Dataset:
    folder = ensure_files(mnist_dir, cache_dir)
    images_name, labels_name = SPLIT_FILES[split]
    images = read_idx_gz(folder / images_name)
    labels = read_idx_gz(folder / labels_name)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DatasetError(f"{split}: inconsistent shapes {images.shape} / {labels.shape}")
    return Dataset(images=images.copy(), labels=labels.astype(np.int64))
