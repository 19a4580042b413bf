import gzip
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digits.config import get_settings
from digits.data import mnist


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_parse_idx_round_trip(tmp_path: Path) -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    _write_idx(tmp_path / "x.gz", images)
    assert np.array_equal(mnist.read_idx_gz(tmp_path / "x.gz"), images)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "bad idx header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x01\x02", "expected 5 data bytes"),
    ],
)
def test_parse_idx_rejects_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(mnist.DatasetError, match=message):
        mnist.parse_idx(raw, name="f")


def test_load_mnist_from_shared_copy(mnist_dir: Path) -> None:
    test = mnist.load_mnist("test", mnist_dir)
    assert test.images.shape == (10_000, 28, 28)
    assert test.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist()[:3] == [980, 1135, 1032]


def test_missing_file_names_it_and_how_to_supply(tmp_path: Path) -> None:
    with pytest.raises(mnist.DatasetError) as err:
        mnist.ensure_files(tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "DIGITS_MNIST_DIR" in message


def test_truncated_file_fails_checksum(tmp_path: Path, mnist_dir: Path) -> None:
    for name in mnist.FILES:
        shutil.copyfile(mnist_dir / name, tmp_path / name)
    victim = tmp_path / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(
        mnist.DatasetError, match=r"corrupt or truncated.*t10k-labels|t10k-labels.*corrupt"
    ):
        mnist.ensure_files(tmp_path)


def test_local_dir_is_read_only(tmp_path: Path, mnist_dir: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in mnist_dir.iterdir()}
    assert mnist.ensure_files(mnist_dir) == mnist_dir
    assert {p.name: p.stat().st_mtime_ns for p in mnist_dir.iterdir()} == before


@pytest.fixture
def no_local_mnist(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DIGITS_MNIST_DIR", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("no_local_mnist")
def test_download_from_mirror_with_checksum(tmp_path: Path, mnist_dir: Path) -> None:
    """The downloader takes a file:// mirror: the first bad mirror is skipped, the good one used."""
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in mnist.FILES:
        (bad / name).write_bytes(b"not mnist")
    cache = tmp_path / "cache"
    folder = mnist.ensure_files(None, cache, mirrors=(bad.as_uri() + "/", mnist_dir.as_uri() + "/"))
    assert folder == cache
    for name, digest in mnist.FILES.items():
        assert mnist.sha256_of(cache / name) == digest


@pytest.mark.usefixtures("no_local_mnist")
def test_no_network_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        mnist.DatasetError, match=r"could not download train-images.*DIGITS_MNIST_DIR"
    ):
        mnist.ensure_files(None, tmp_path, mirrors=("http://127.0.0.1:9/",), timeout=2)
