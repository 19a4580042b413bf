"""How far could any session memory that answers like the most similar remembered drawing go?

For `test` and `loop` writers, sent and labelled as benchmarks/memory_sim.py sends them, and for
each representation of a drawing (the model input's pixels, and the output of every layer of the
shipped network, the last being the penultimate features digits.memory compares): the late
errors (a digit the plain model gets wrong from the 21st drawing on) whose most similar drawing
among the last DIGITS_SESSION_MEMORY_SIZE labelled ones has another class, as a share of all of
them (the floor of errors_21_on_vs_plain, whose target is 0.30), the same with none of the 3
most similar of that class (a floor for memories that weigh a few neighbours), and the letters the plain model
reads as a digit after the same letter was labelled whose most similar drawing is a letter (the
ceiling of letter_flips_not_a_digit, whose target is 0.80). Needs torch.

    .venv/bin/python benchmarks/memory_bound.py
"""

from __future__ import annotations

import numpy as np
import torch
from memory_sim import people

from digits import checkpoint, preprocess
from digits.config import SHIPPED_WEIGHTS, get_settings
from digits.predict import Predictor


def _layers(net: torch.nn.Module, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 28, 28) model inputs -> name -> (N, D) each layer's output, flattened."""
    x = torch.from_numpy(preprocess.normalize(inputs.astype(np.float32))[:, None])
    found = {"pixels": inputs.reshape(len(inputs), -1)}
    with torch.no_grad():
        for k, layer in enumerate(net.features):
            x = layer(x)
            found[f"features[{k}] {type(layer).__name__}"] = x.flatten(1).numpy()
    return found


def main() -> None:
    predictor = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
    net = checkpoint.load(SHIPPED_WEIGHTS).build_model().eval()
    size = get_settings().session_memory_size
    counts: dict[str, list[int]] = {}
    for person in people(("test", "loop")):
        labels = [s.label for s in person.samples]
        inputs = person.inputs()
        probabilities, rejects, _ = predictor.scores_and_features(inputs)
        answers = [
            "not_a_digit" if predictor.status(p, float(r)) == "not_a_digit" else str(p.argmax())
            for p, r in zip(probabilities, rejects, strict=True)
        ]
        for name, values in _layers(net, inputs).items():
            unit = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
            similar = unit @ unit.T
            late, late_out, late_out3, letters, letters_in = counts.setdefault(name, [0] * 5)
            for i, label in enumerate(labels[1:], start=1):
                start = max(0, i - size)
                order = start + np.argsort(-similar[i, start:i], kind="stable")
                nearest = labels[order[0]]
                if label.isdigit() and i >= 20 and answers[i] != label:
                    late, late_out = late + 1, late_out + (nearest != label)
                    late_out3 += label not in {labels[k] for k in order[:3]}
                if not label.isdigit() and label in labels[start:i] and answers[i] != "not_a_digit":
                    letters, letters_in = letters + 1, letters_in + (not nearest.isdigit())
            counts[name] = [late, late_out, late_out3, letters, letters_in]
    print(
        f"{'representation':28} {'late errors out of reach':>26} {'(of the 3 nearest)':>20}"
        f" {'letters within reach':>22}"
    )
    for name, (late, late_out, late_out3, letters, letters_in) in counts.items():
        print(
            f"{name:28} {late_out:>4} of {late:<4} ({late_out / late:5.2f})"
            f"   {late_out3:>4} of {late:<4} ({late_out3 / late:5.2f})"
            f"   {letters_in:>4} of {letters:<4} ({letters_in / letters:5.2f})"
        )


if __name__ == "__main__":
    main()
