"""A toy codec family, defined entirely in this module: what adding a family to lic takes.

The codec averages 8x8 blocks, scales them by a learned gain and stores the rounded bytes
zlib-compressed; training learns the gain (it starts away from 1) on the training crops.
`test_registry.py` registers it and runs it through `lic train`, `lic export`, `lic encode`
and `lic decode` without any other file knowing it.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lic.codecs.base import Encoded, to_input, to_pixels
from lic.errors import FormatError, InputError, ModelError
from lic.models import save_model_file
from lic.train.common import RunConfig
from lic.train.data import load_images

BLOCK = 8
CALIBRATION_SIDE = BLOCK  # the export calibrates nothing, but takes any image


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: Tensor) -> Tensor:
        """x in [0, 1] -> its reconstruction through the rounded (straight-through) block means."""
        means = F.avg_pool2d(x, BLOCK) * 255 * self.gain
        coded = means + (torch.round(means) - means).detach()
        return F.interpolate(coded / (255 * self.gain), scale_factor=BLOCK, mode="nearest")


class ToyCodec:
    family: ClassVar[str] = "toy"
    stride = BLOCK

    def __init__(self, tensors: dict[str, Tensor], config: dict, device: torch.device) -> None:
        self.gain = float(tensors["gain"])
        self.quality = int(config["quality"])

    def for_quality(self, quality: int) -> "ToyCodec":
        if quality != self.quality:
            raise ModelError(f"this toy model codes quality {self.quality}, not {quality}")
        return self

    def encode(self, x: Tensor) -> Encoded:
        means = torch.round(F.avg_pool2d(to_input(x), BLOCK) * 255 * self.gain).clamp(0, 255)
        return Encoded([zlib.compress(means.to(torch.uint8).numpy().tobytes())], bytes(4))

    def decode(self, encoded: Encoded, height: int, width: int) -> Tensor:
        try:
            data = zlib.decompress(encoded.streams[0])
        except zlib.error:
            raise FormatError("the toy stream is damaged") from None
        means = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(1, 3, height // BLOCK, width // BLOCK)
        pixels = means.to(torch.float32) / (255 * self.gain)
        return to_pixels(F.interpolate(pixels, scale_factor=BLOCK, mode="nearest"))


@dataclass(kw_only=True)
class ToyTrainConfig(RunConfig):
    steps: int = 20
    batch: int = 2
    crop: int = 32
    lr: float = 0.05
    val_every: int = 0
    name: str = "toy"
    quality: int = 1

    def model_config(self) -> dict:
        return {"name": self.name, "family": "toy", "quality": self.quality}


def train(cfg: ToyTrainConfig) -> dict:
    """Learns the gain; writes OUT/weights.safetensors (float) and OUT/model.safetensors."""
    from safetensors.torch import save_file

    images, _ = load_images(cfg.data, cfg.crop)
    if not images:
        raise InputError("no training images")
    torch.manual_seed(cfg.seed)
    model = ToyNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = time.perf_counter()
    for step in range(cfg.steps):
        x = torch.stack([images[(step * cfg.batch + i) % len(images)][:, : cfg.crop, : cfg.crop]
                         for i in range(cfg.batch)]).float() / 255
        loss = (model(x) - x).pow(2).mean() + (model.gain - 1).pow(2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"gain": model.gain.detach().reshape(1)}, str(out / "weights.safetensors"))
    save_model_file(out / "model.safetensors", export_model(model, images), cfg.model_config())
    seconds = time.perf_counter() - start
    return {"finished": True, "steps_done": cfg.steps, "wall_seconds": seconds,
            "images_per_second": round(cfg.steps * cfg.batch / max(seconds, 1e-9), 1)}


def float_model(state: dict[str, Tensor], quality: int, name: str) -> tuple[ToyNet, dict]:
    if set(state) != {"gain"}:
        raise InputError("not the float weights of a toy model")
    model = ToyNet()
    model.gain.data.copy_(state["gain"].reshape(()))
    return model, {"name": name, "family": "toy", "quality": quality}


def export_model(model: ToyNet, images: list[Tensor]) -> dict[str, Tensor]:
    return {"gain": model.gain.detach().reshape(1).clone()}
