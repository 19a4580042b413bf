"""The training recipe's settings: one object shared by training, fine-tuning and the data."""

from __future__ import annotations

from dataclasses import dataclass, field

from digits.model import NUM_CLASSES


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 128
    max_lr: float = 4e-3
    weight_decay: float = 5e-4
    width: int = 32
    dropout: float = 0.25
    val_size: int = 5000
    synthetic: int = 20000
    num_classes: int = NUM_CLASSES
    pen_renders: int = 3  # each real pen digit of `train` writers drawn this many times
    reject_renders: int = 3  # and each rejectable letter
    scribbles: int = 4000  # generated non-digits (shapes, smileys, scribbles)
    pairs: int = 2000  # two digits side by side: not one digit
    seed: int = 0
    dry_run: bool = False
    augment: dict[str, float] = field(
        default_factory=lambda: {
            "rotate_deg": 12.0,
            "scale": 0.12,
            "shear": 0.25,
            "shift_px": 2.0,
            "p_thicken": 0.2,
            "p_thin": 0.15,
            "p_faint": 0.1,
        }
    )
