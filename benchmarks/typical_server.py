"""The baseline the prediction-service issue measured: a typical implementation of this app.

One synchronous worker (the standard library's single-threaded HTTP server, as a sync WSGI
worker would be), torch with its default threading, an eager two-convolution CNN, naive
preprocessing (grey, resize to 28x28, scale) and no database write. `api_bench.py` runs it
in the same session as our server, so both sets of figures come from the same machine state.

    .venv/bin/python benchmarks/typical_server.py PORT
"""

from __future__ import annotations

import io
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import torch
from PIL import Image
from python_multipart.multipart import parse_options_header
from torch import nn


class TypicalNet(nn.Module):
    """The CNN of a typical MNIST tutorial."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


MODEL = TypicalNet().eval()


def image_field(content_type: str, body: bytes) -> bytes:
    _, params = parse_options_header(content_type)
    for part in body.split(b"--" + params[b"boundary"]):
        head, _, data = part.partition(b"\r\n\r\n")
        if b'name="image"' in head:
            return data[: -len(b"\r\n")]
    raise ValueError("no image field")


def predict(png: bytes) -> dict[str, object]:
    image = Image.open(io.BytesIO(png)).convert("L").resize((28, 28))
    pixels = 1.0 - np.asarray(image, dtype=np.float32) / 255.0
    with torch.no_grad():
        probs = torch.softmax(MODEL(torch.from_numpy(pixels)[None, None]), dim=1)[0]
    digit = int(probs.argmax())
    return {"digit": digit, "confidence": float(probs[digit]), "probabilities": probs.tolist()}


class Handler(BaseHTTPRequestHandler):
    # Like a sync worker (gunicorn's, say): one request per connection, no Nagle delay.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._reply(200, {"status": "ok"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(201, predict(image_field(self.headers["Content-Type"], body)))

    def _reply(self, status: int, payload: dict[str, object]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
