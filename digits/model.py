"""The network: a compact CNN for 28x28 digits. Architecture only."""

from __future__ import annotations

import torch
from torch import nn

from digits.schemas import NOT_A_DIGIT as NOT_A_DIGIT
from digits.schemas import NUM_DIGITS

NUM_CLASSES = NUM_DIGITS + 1


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DigitNet(nn.Module):
    def __init__(self, width: int = 32, num_classes: int = 10, dropout: float = 0.25) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(1, w, 5),  # (N, w, 28, 28)
            nn.MaxPool2d(2),  # (N, w, 14, 14)
            _conv(w, 2 * w, 3),  # (N, 2w, 14, 14)
            _conv(2 * w, 2 * w, 3),  # (N, 2w, 14, 14)
            nn.MaxPool2d(2),  # (N, 2w, 7, 7)
            _conv(2 * w, 4 * w, 3),  # (N, 4w, 7, 7)
            nn.MaxPool2d(2),  # (N, 4w, 3, 3)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (N, 36w)
            nn.Dropout(dropout),
            nn.Linear(4 * w * 3 * 3, num_classes),  # (N, num_classes) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 1, 28, 28), standardised with MNIST mean/std
        return self.classifier(self.features(x))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) -> (N, 36w): what the last layer reads, flattened."""
        return self.classifier[0](self.features(x))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 36w) penultimate features -> (N, num_classes) logits."""
        return self.classifier[2](self.classifier[1](features))
