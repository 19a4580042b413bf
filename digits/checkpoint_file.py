"""A checkpoint file read without torch: its metadata, its ONNX graph, and its version checked
against the weights it holds. Serving reads checkpoints only through here, so it never imports
torch; training (digits.checkpoint) writes them, and reads them through here too.

The file is what ``torch.save`` writes: a zip holding a pickle (``data.pkl``) whose tensors
point at raw little-endian arrays beside it (``data/<key>``). A restricted unpickler turns those
tensors into numpy arrays and admits nothing else that could run code.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digits import preprocess

FORMAT = "digits-checkpoint/1"
NUM_DIGITS = 10
NOT_A_DIGIT = 10  # the extra class: letters, shapes, scribbles, several digits
# The exported graph's input and outputs, as Predictor and the session memory read them.
GRAPH_INPUT = "input"  # (N, 1, 28, 28) float32, standardised with MNIST mean/std
GRAPH_LOGITS = "logits"  # (N, num_classes) raw logits: the ten digits, then NOT_A_DIGIT
GRAPH_FEATURES = "features"  # (N, 36 * width) penultimate features, the last layer's input

_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",  # kept as raw bits: hashed, never computed with here
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or not one of ours."""


class MissingGraphError(CheckpointError):
    """A checkpoint made before checkpoints carried their ONNX graph: serving cannot run it."""


@dataclass(frozen=True)
class ServingCheckpoint:
    """Everything serving reads from a checkpoint: no weights, the graph that holds them."""

    version: str
    model_args: dict[str, Any]
    temperature: float
    metrics: dict[str, Any]
    preprocessing: dict[str, Any]
    parent: str | None
    data: dict[str, Any]
    created_at: str
    graph: bytes | None  # an ONNX model; None in a checkpoint from an earlier release
    name: str = "checkpoint"  # how messages name where it came from

    def require_graph(self) -> bytes:
        if self.graph is None:
            raise MissingGraphError(
                f"{self.name} (model {self.version}) has no ONNX graph, which serving needs: "
                "run `digits models export-onnx` once (for a file: `digits models export-onnx "
                "FILE`); it needs torch, `pip install 'digits[train]'`"
            )
        return self.graph


def weights_version(arrays: Mapping[str, np.ndarray], temperature: float) -> str:
    """Content hash of the weights and the calibration: the same bytes, the same version."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    digest.update(repr(round(float(temperature), 6)).encode())
    return digest.hexdigest()[:12]


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> np.ndarray:
    strides = tuple(step * storage.itemsize for step in stride)
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=strides)
    return np.array(view)  # a contiguous, writable copy


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"{module}.{name} has no place in a checkpoint")

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            self._storages[key] = np.frombuffer(raw, dtype=dtype, count=numel)
        return self._storages[key]


def read_payload(raw: bytes, *, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checkpoint's payload and its weights as arrays, once its format, preprocessing and
    version are checked. Raises CheckpointError."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            pickled = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pickled) != 1:
                raise CheckpointError(f"{name} is not a readable checkpoint: no single data.pkl")
            prefix = pickled[0].removesuffix("data.pkl")
            # zipfile checks each entry's CRC-32 as it reads it: a flipped bit is an error.
            payload = _Unpickler(archive.read(pickled[0]), archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{name} is not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{name} is not a {FORMAT} file")
    try:
        trained_with = payload["preprocessing"].get("version")
        arrays: dict[str, np.ndarray] = dict(payload["state_dict"])
        version = weights_version(arrays, payload["temperature"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"{name} is not a complete {FORMAT} file: {exc!r}") from exc
    if trained_with != preprocess.PREPROCESS_VERSION:
        raise CheckpointError(
            f"{name} was trained with preprocessing v{trained_with}, "
            f"this code uses v{preprocess.PREPROCESS_VERSION}"
        )
    if version != payload["version"]:
        raise CheckpointError(
            f"{name} is corrupt: its weights hash to {version}, the file says {payload['version']}"
        )
    return payload, arrays


def load_bytes(raw: bytes, *, name: str = "checkpoint") -> ServingCheckpoint:
    payload, _ = read_payload(raw, name=name)
    graph = payload.get("graph")  # (bytes,) uint8
    return ServingCheckpoint(
        version=payload["version"],
        model_args=payload["model_args"],
        temperature=float(payload["temperature"]),
        metrics=payload["metrics"],
        preprocessing=payload["preprocessing"],
        parent=payload.get("parent"),
        data=payload.get("data", {}),
        created_at=payload["created_at"],
        graph=None if graph is None else graph.tobytes(),
        name=name,
    )


def read_file(path: Path) -> bytes:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc


def load(path: Path) -> ServingCheckpoint:
    return load_bytes(read_file(path), name=str(path))
