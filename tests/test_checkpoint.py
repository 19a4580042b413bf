from pathlib import Path

import pytest
import torch

from digits import checkpoint as ckpt
from digits.model import DigitNet


def _checkpoint(seed: int = 0) -> ckpt.Checkpoint:
    torch.manual_seed(seed)
    model = DigitNet(width=8)
    return ckpt.from_model(model, {"width": 8}, temperature=1.3, metrics={"val_accuracy": 0.5})


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    original = _checkpoint()
    version = ckpt.save(original, tmp_path / "m.pt")
    loaded = ckpt.load(tmp_path / "m.pt")
    assert loaded.version == version == original.version
    assert loaded.temperature == pytest.approx(1.3)
    assert loaded.metrics == {"val_accuracy": 0.5}
    assert loaded.model_args == {"width": 8}
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(original.build_model()(x), loaded.build_model()(x))


def test_version_is_a_content_hash() -> None:
    assert _checkpoint(0).version == _checkpoint(0).version
    assert _checkpoint(0).version != _checkpoint(1).version


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    ckpt.save(_checkpoint(), path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["classifier.2.bias"] += 1.0
    torch.save(payload, path)
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load(path)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10])
def test_unreadable_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(content)
    with pytest.raises(ckpt.CheckpointError, match="not a readable checkpoint"):
        ckpt.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        ckpt.load(tmp_path / "absent.pt")


def test_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ckpt.CheckpointError, match="not a digits-checkpoint"):
        ckpt.load(path)


def test_predictor_serves_the_same_outputs_as_the_eager_model() -> None:
    from digits.predict import Predictor

    original = _checkpoint()
    predictor = Predictor(original)
    eager = original.build_model()
    for batch in (1, 7, 300):
        x = torch.rand(batch, 28, 28)
        with torch.no_grad():
            expected = torch.softmax(eager(((x - 0.1307) / 0.3081).unsqueeze(1)) / 1.3, dim=1)
        assert torch.allclose(
            torch.from_numpy(predictor.probabilities(x.numpy())), expected, atol=1e-5
        )
