"""What every codec gives the container: byte streams out, a padded image tensor back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Encoded:
    streams: list[bytes]
    digest: bytes  # 4-byte digest of the entropy parameters the decoder must re-derive
    step: int = 0  # quantisation step code (hyperprior rate control; the container's version 2)


class Codec(Protocol):
    family: ClassVar[str]  # its entry in `lic.codecs.registry`
    stride: int  # input sides must be multiples of this

    def for_quality(self, quality: int) -> "Codec":
        """The codec for one of the model file's qualities (a ModelError for any other)."""

    def encode(self, x: Tensor) -> Encoded:
        """x: [1, 3, H, W], 8-bit pixels (uint8) or float in [0, 1] (`to_input`), H and W
        multiples of `stride`."""

    def decode(self, encoded: Encoded, height: int, width: int) -> Tensor:
        """Returns the decoded 8-bit pixels [1, 3, height, width] (`to_pixels`)."""


def as_pixels(rgb: np.ndarray) -> Tensor:
    """An H x W x 3 uint8 array as the [1, 3, H, W] 8-bit pixels codecs take, without copying."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


def as_rgb(pixels: Tensor) -> np.ndarray:
    """The inverse of `as_pixels`: an H x W x 3 uint8 array from [1, 3, H, W] 8-bit pixels."""
    return pixels[0].permute(1, 2, 0).contiguous().numpy()


def to_input(x: Tensor) -> Tensor:
    """What the analysis networks read: float32 in [0, 1], from 8-bit pixels or a float image.

    Encoders convert 8-bit images tile by tile with this, so a large image is held as uint8
    (a quarter of float32) and the values are those of converting it whole."""
    return x.to(torch.float32) / 255 if x.dtype == torch.uint8 else x.to(torch.float32)


def to_pixels(x: Tensor) -> Tensor:
    """8-bit pixels (uint8, same shape) from a decoder's output in about [0, 1]."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, int, int]:
    """Pads bottom/right by edge replication (cheaper to code than zeros; works for 1x1)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, pad_h, pad_w


def to_device(device: str) -> torch.device:
    """The torch device for `--device`: the CPU or an existing CUDA GPU, else an InputError."""
    from lic.errors import InputError

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise InputError(f"unknown device '{device}' (use cpu, cuda or cuda:N)")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device} was asked for, but no CUDA GPU is available")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return parsed
