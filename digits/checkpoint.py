"""Self-describing checkpoints: weights, architecture arguments, normalisation, temperature,
metrics, training config, a version (a hash of the weights) and the ONNX graph serving runs.

Written with torch, when a checkpoint is made (`Checkpoint`, `save`, `load` for training);
read without it (`read` -> `ServingCheckpoint`, the version checked against the weights), so
serving never imports torch: the functions that need it import it when called
(`pip install 'digits[train]'`).

The file is what ``torch.save`` writes: a zip holding a pickle (``data.pkl``) whose tensors
point at raw little-endian arrays beside it (``data/<key>``). A restricted unpickler turns those
tensors into numpy arrays and admits nothing else that could run code.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digits import preprocess

if TYPE_CHECKING:
    import torch

    from digits.model import DigitNet

FORMAT = "digits-checkpoint/1"
# The exported graph's input and outputs, as Predictor and the session memory read them.
GRAPH_INPUT = "input"  # (N, 1, 28, 28) float32, standardised with MNIST mean/std
GRAPH_LOGITS = "logits"  # (N, num_classes) raw logits: the ten digits, then not-a-digit
GRAPH_FEATURES = "features"  # (N, 36 * width) penultimate features, the last layer's input
# torch.onnx.export keeps process-global state: two exports at once (two threads training, a
# retraining beside a test) fail with "GLOBALS.in_onnx_export must be False".
_EXPORT_LOCK = threading.Lock()

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


def read_bytes(raw: bytes, *, name: str = "checkpoint") -> ServingCheckpoint:
    """What serving reads of a checkpoint file's bytes, its version checked; no torch."""
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


def file_bytes(path: Path) -> bytes:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc


def read(path: Path) -> ServingCheckpoint:
    return read_bytes(file_bytes(path), name=str(path))


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    model_args: dict[str, Any]
    temperature: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=preprocess.describe)
    parent: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def version(self) -> str:
        arrays = {k: v.detach().cpu().contiguous().numpy() for k, v in self.state_dict.items()}
        return weights_version(arrays, self.temperature)

    def build_model(self) -> DigitNet:
        from digits.model import DigitNet

        model = DigitNet(**self.model_args)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model

    def for_serving(self) -> ServingCheckpoint:
        """What a Predictor runs: this checkpoint's metadata and its weights exported as a graph."""
        return read_bytes(to_bytes(self), name=f"checkpoint {self.version}")


def export_graph(model: DigitNet) -> bytes:
    """The eval-mode network as an ONNX model (input, logits and features named as GRAPH_*
    say), for ONNX Runtime: for one 28x28 image it runs this network faster than torch, whose
    per-operator dispatch costs more than the arithmetic."""
    import torch

    class Served(torch.nn.Module):
        """The network with the two outputs serving reads."""

        def __init__(self, net: DigitNet) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.net.penultimate(x)  # (N, 36w)
            return self.net.head(features), features  # (N, num_classes), (N, 36w)

    size = preprocess.IMAGE_SIZE
    example = torch.zeros(1, 1, size, size)
    with (
        _EXPORT_LOCK,
        tempfile.TemporaryDirectory(prefix="digits-onnx-") as tmp,
        warnings.catch_warnings(),
        torch.inference_mode(),
    ):
        path = Path(tmp) / "model.onnx"
        # The TorchScript-based exporter: no onnxscript or C compiler needed, and torch is
        # pinned (pyproject.toml), so its deprecation does not bite.
        warnings.simplefilter("ignore", DeprecationWarning)
        outputs = [GRAPH_LOGITS, GRAPH_FEATURES]
        torch.onnx.export(
            Served(model).eval(),
            (example,),
            path,
            input_names=[GRAPH_INPUT],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [GRAPH_INPUT, *outputs]},
            dynamo=False,
        )
        return path.read_bytes()


def from_model(model: torch.nn.Module, model_args: dict[str, Any], **fields: Any) -> Checkpoint:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Checkpoint(state_dict=state, model_args=dict(model_args), **fields)


def to_bytes(checkpoint: Checkpoint) -> bytes:
    """The file's bytes, with a graph exported from these weights now."""
    import torch

    payload = {
        "format": FORMAT,
        "version": checkpoint.version,
        "state_dict": checkpoint.state_dict,
        "model_args": checkpoint.model_args,
        "temperature": float(checkpoint.temperature),
        "metrics": checkpoint.metrics,
        "train_config": checkpoint.train_config,
        "preprocessing": checkpoint.preprocessing,
        "parent": checkpoint.parent,
        "data": checkpoint.data,
        "created_at": checkpoint.created_at,
        # Outside the version, which hashes the weights alone: adding the graph to a
        # checkpoint from an earlier release keeps its version. A byte tensor, so the zip
        # stores it as a raw entry beside the weights.
        "graph": torch.frombuffer(
            bytearray(export_graph(checkpoint.build_model())), dtype=torch.uint8
        ),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save(checkpoint: Checkpoint, path: Path) -> str:
    write_atomically(to_bytes(checkpoint), path)
    return checkpoint.version


def write_atomically(raw: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)


def load(path: Path) -> Checkpoint:
    return load_bytes(file_bytes(path), name=str(path))


def load_bytes(raw: bytes, *, name: str = "checkpoint") -> Checkpoint:
    """A checkpoint to train from; its bytes are read as serving reads them."""
    import torch

    payload, arrays = read_payload(raw, name=name)
    checkpoint = Checkpoint(
        state_dict={k: torch.from_numpy(v) for k, v in arrays.items()},
        model_args=payload["model_args"],
        temperature=payload["temperature"],
        metrics=payload["metrics"],
        train_config=payload["train_config"],
        preprocessing=payload["preprocessing"],
        parent=payload.get("parent"),
        data=payload.get("data", {}),
        created_at=payload["created_at"],
    )
    try:
        checkpoint.build_model()
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{name}: weights do not fit the architecture: {exc}") from exc
    return checkpoint


def with_graph(raw: bytes, *, name: str) -> bytes:
    """A checkpoint's bytes with a graph exported from its weights; the same version."""
    return to_bytes(load_bytes(raw, name=name))
