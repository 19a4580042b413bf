"""Self-describing checkpoints: weights, architecture arguments, normalisation, temperature,
metrics, training config, a version (a hash of the weights) and the ONNX graph serving runs.
Training writes them here; everyone reads them through digits.checkpoint_file (no torch)."""

from __future__ import annotations

import io
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from digits import checkpoint_file, preprocess
from digits.checkpoint_file import FORMAT, CheckpointError, ServingCheckpoint
from digits.model import DigitNet

# torch.onnx.export keeps process-global state: two exports at once (two threads training, a
# retraining beside a test) fail with "GLOBALS.in_onnx_export must be False".
_EXPORT_LOCK = threading.Lock()


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
        return checkpoint_file.weights_version(arrays, self.temperature)

    def build_model(self) -> DigitNet:
        model = DigitNet(**self.model_args)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model

    def for_serving(self) -> ServingCheckpoint:
        """What a Predictor runs: this checkpoint's metadata and its weights exported as a graph."""
        return checkpoint_file.load_bytes(to_bytes(self), name=f"checkpoint {self.version}")


class _Served(torch.nn.Module):
    """The network with the two outputs serving reads: logits and penultimate features."""

    def __init__(self, net: DigitNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.penultimate(x)  # (N, 36w)
        return self.net.head(features), features  # (N, num_classes), (N, 36w)


def export_graph(model: DigitNet) -> bytes:
    """The eval-mode network as an ONNX model (input, logits and features named as
    digits.checkpoint_file says), for ONNX Runtime: for one 28x28 image it runs this network
    faster than torch, whose per-operator dispatch costs more than the arithmetic."""
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
        outputs = [checkpoint_file.GRAPH_LOGITS, checkpoint_file.GRAPH_FEATURES]
        torch.onnx.export(
            _Served(model).eval(),
            (example,),
            path,
            input_names=[checkpoint_file.GRAPH_INPUT],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [checkpoint_file.GRAPH_INPUT, *outputs]},
            dynamo=False,
        )
        return path.read_bytes()


def from_model(model: torch.nn.Module, model_args: dict[str, Any], **fields: Any) -> Checkpoint:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Checkpoint(state_dict=state, model_args=dict(model_args), **fields)


def to_bytes(checkpoint: Checkpoint) -> bytes:
    """The file's bytes, with a graph exported from these weights now."""
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
    return load_bytes(checkpoint_file.read_file(path), name=str(path))


def load_bytes(raw: bytes, *, name: str = "checkpoint") -> Checkpoint:
    """Files and the registry's stored bytes both come through here."""
    payload, arrays = checkpoint_file.read_payload(raw, name=name)
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
