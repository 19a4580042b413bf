"""Self-describing checkpoints: weights, architecture arguments, normalisation, temperature,
metrics, training config and a version (a hash of the weights). One loader for everyone."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from digits import preprocess
from digits.model import DigitNet

FORMAT = "digits-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or not one of ours."""


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
        return weights_version(self.state_dict, self.temperature)

    def build_model(self) -> DigitNet:
        model = DigitNet(**self.model_args)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model


def weights_version(state_dict: dict[str, torch.Tensor], temperature: float) -> str:
    """Content hash of the weights and the calibration: the same bytes, the same version."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    digest.update(repr(round(float(temperature), 6)).encode())
    return digest.hexdigest()[:12]


def from_model(model: torch.nn.Module, model_args: dict[str, Any], **fields: Any) -> Checkpoint:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Checkpoint(state_dict=state, model_args=dict(model_args), **fields)


def save(checkpoint: Checkpoint, path: Path) -> str:
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
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return checkpoint.version


def load(path: Path) -> Checkpoint:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc
    return load_bytes(raw, name=str(path))


def load_bytes(raw: bytes, *, name: str = "checkpoint") -> Checkpoint:
    """The one loader: files and the registry's stored bytes both come through here."""
    path = name  # how the messages below name the source
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file")
    if payload["preprocessing"].get("version") != preprocess.PREPROCESS_VERSION:
        raise CheckpointError(
            f"{path} was trained with preprocessing v{payload['preprocessing'].get('version')}, "
            f"this code uses v{preprocess.PREPROCESS_VERSION}"
        )
    checkpoint = Checkpoint(
        state_dict=payload["state_dict"],
        model_args=payload["model_args"],
        temperature=payload["temperature"],
        metrics=payload["metrics"],
        train_config=payload["train_config"],
        preprocessing=payload["preprocessing"],
        parent=payload.get("parent"),
        data=payload.get("data", {}),
        created_at=payload["created_at"],
    )
    if checkpoint.version != payload["version"]:
        raise CheckpointError(
            f"{path} is corrupt: its weights hash to {checkpoint.version}, "
            f"the file says {payload['version']}"
        )
    try:
        checkpoint.build_model()
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the architecture: {exc}") from exc
    return checkpoint
