import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from digits import checkpoint as ckpt
from digits.config import SHIPPED_WEIGHTS
from digits.model import DigitNet
from digits.predict import Predictor


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
    original = _checkpoint()
    predictor = Predictor(original.for_serving())
    eager = original.build_model()
    for batch in (1, 7, 300):
        x = torch.rand(batch, 28, 28)
        standardised = ((x - 0.1307) / 0.3081).unsqueeze(1)
        with torch.no_grad():
            expected = torch.softmax(eager(standardised) / 1.3, dim=1)
            features = eager.penultimate(standardised)
        assert torch.allclose(
            torch.from_numpy(predictor.probabilities(x.numpy())), expected, atol=1e-5
        )
        logits, served_features = predictor.logits_and_features(x.numpy())
        assert served_features.shape == (batch, 36 * 8)
        assert np.allclose(served_features, features.numpy(), atol=1e-5)
        assert np.allclose(logits, predictor.logits(x.numpy()))


def test_the_file_is_read_and_its_version_checked_without_torch(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    version = ckpt.save(_checkpoint(), path)
    code = (
        "import sys; from pathlib import Path; from digits import checkpoint; "
        "c = checkpoint.read(Path(sys.argv[1])); "
        "assert 'torch' not in sys.modules; print(c.version, c.graph is not None, c.temperature)"
    )
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [version, "True", "1.3"]


def _without_graph(path: Path) -> None:
    """What an earlier release wrote: the same payload, no graph."""
    payload = torch.load(path, weights_only=True)
    del payload["graph"]
    torch.save(payload, path)


def test_the_graph_is_outside_the_version(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    version = ckpt.save(_checkpoint(), path)
    _without_graph(path)
    old = ckpt.read(path)
    assert (old.version, old.graph) == (version, None)
    with pytest.raises(ckpt.MissingGraphError, match="digits models export-onnx"):
        Predictor(old)
    restored = ckpt.read_bytes(ckpt.with_graph(path.read_bytes(), name="m"))
    assert restored.version == version
    assert Predictor(restored).version == version


def test_the_shipped_weights_carry_their_graph() -> None:
    shipped = ckpt.read(SHIPPED_WEIGHTS)
    assert shipped.graph is not None
    assert shipped.version == ckpt.load(SHIPPED_WEIGHTS).version


def test_a_damaged_graph_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    ckpt.save(_checkpoint(), path)
    raw = bytearray(path.read_bytes())
    graph = ckpt.read(path).graph
    assert graph is not None
    at = raw.find(graph[len(graph) // 2 : len(graph) // 2 + 64])
    raw[at] ^= 0xFF
    with pytest.raises(ckpt.CheckpointError, match="CRC"):
        ckpt.read_bytes(bytes(raw))


def test_an_incomplete_payload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save({"format": ckpt.FORMAT, "state_dict": {}}, path)
    with pytest.raises(ckpt.CheckpointError, match="not a complete"):
        ckpt.read(path)


def test_only_tensors_and_plain_data_are_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    flag = tmp_path / "ran"
    torch.save({"format": ckpt.FORMAT, "x": _Exploit(str(flag))}, path)
    with pytest.raises(ckpt.CheckpointError, match="has no place in a checkpoint"):
        ckpt.read(path)
    assert not flag.exists()


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)
