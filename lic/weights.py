"""Per-output-channel symmetric integer weights, packed to their bit width for storage.

Why this form: a convolution's output channels have very different weight ranges, so one
scale per output channel (and none per input) keeps int8 essentially lossless and makes int6
and int4 usable for the less sensitive layers. Symmetric (no zero point) because trained
conv weights are centred on 0, and a zero point would cost a multiply-add at load for no gain.

In a model file a quantized weight `W` of layer `L` is three tensors:

    L.weight.q      uint8 [ceil(count * bits / 8)]   the integers, offset by 2**(bits-1) - 1 to be
                                                     non-negative, packed `bits` bits each, MSB first
    L.weight.scale  float16 [out channels]           one step size per output channel
    L.weight.qinfo  int64 [2 + ndim]                 bits, output-channel dim, shape

Dequantizing (`int * float16 scale` in float32) is exact: an int8 times an 11-bit-mantissa
scale needs at most 19 significant bits, so every machine loads the same float weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: Bit widths a weight can be stored at.
SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8)
_CLIP_RATIOS = torch.linspace(0.5, 1.0, 26, dtype=torch.float64)


def pack_signed(values: np.ndarray, bits: int) -> np.ndarray:
    """Packs integers in [-(2**(bits-1) - 1), 2**(bits-1) - 1] into `bits` bits each."""
    offset = 2 ** (bits - 1) - 1
    unsigned = (np.asarray(values, dtype=np.int16).ravel() + offset).astype(np.uint8)
    planes = np.unpackbits(unsigned[:, None], axis=1)[:, 8 - bits :]
    return np.packbits(planes.ravel())


def unpack_signed(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of `pack_signed`: `count` int8 values."""
    planes = np.unpackbits(np.asarray(packed, dtype=np.uint8))[: count * bits].reshape(count, bits)
    unsigned = np.packbits(np.pad(planes, ((0, 0), (8 - bits, 0))), axis=1).ravel()
    return (unsigned.astype(np.int16) - (2 ** (bits - 1) - 1)).astype(np.int8)


@dataclass(frozen=True, eq=False)
class QuantizedWeight:
    """Integers, per-channel float16 scales, and which dimension the scales run along."""

    values: Tensor  # int8, the weight's shape
    scale: Tensor  # float16 [values.shape[channel_dim]]
    bits: int
    channel_dim: int  # 0 for Conv2d, 1 for ConvTranspose2d (their output channels)

    def __post_init__(self) -> None:
        if self.bits not in SUPPORTED_BITS:
            raise ValueError(f"QuantizedWeight: {self.bits} bits is not one of {SUPPORTED_BITS}")
        if self.values.dtype != torch.int8 or self.scale.dtype != torch.float16:
            raise ValueError("QuantizedWeight: values must be int8 and scales float16")
        if self.scale.shape != (self.values.shape[self.channel_dim],):
            raise ValueError("QuantizedWeight: one scale per output channel is required")
        limit = 2 ** (self.bits - 1) - 1
        if self.values.numel() and int(self.values.abs().max()) > limit:
            raise ValueError(f"QuantizedWeight: values exceed the {self.bits}-bit range")

    @classmethod
    def quantize(cls, weight: Tensor, bits: int, channel_dim: int) -> "QuantizedWeight":
        """Rounds `weight` to `bits` bits per output channel. Each channel's step is the one,
        among clipping ratios 0.5..1 of its largest magnitude, with the least squared error:
        at 4 bits clipping a few outliers beats a coarse grid for everything else."""
        w = weight.detach().to(torch.float64).movedim(channel_dim, 0)
        flat = w.reshape(w.shape[0], -1)
        limit = 2 ** (bits - 1) - 1
        peak = flat.abs().amax(dim=1)
        candidates = (peak[:, None] * _CLIP_RATIOS[None, :] / limit).to(torch.float16).to(torch.float64)
        candidates = torch.where(candidates > 0, candidates, torch.ones_like(candidates))
        q = torch.round(flat[:, None, :] / candidates[:, :, None]).clamp(-limit, limit)
        error = ((q * candidates[:, :, None] - flat[:, None, :]) ** 2).sum(dim=2)
        best = error.argmin(dim=1)
        scale = candidates[torch.arange(flat.shape[0]), best]
        values = q[torch.arange(flat.shape[0]), best].reshape(w.shape).movedim(0, channel_dim)
        return cls(values.to(torch.int8).contiguous(), scale.to(torch.float16), bits, channel_dim)

    def dequantize(self) -> Tensor:
        shape = [1] * self.values.dim()
        shape[self.channel_dim] = -1
        return self.values.to(torch.float32) * self.scale.to(torch.float32).view(shape)

    @property
    def stored_bytes(self) -> int:
        return -(-self.values.numel() * self.bits // 8) + 2 * self.scale.numel()

    def to_tensors(self, prefix: str) -> dict[str, Tensor]:
        info = [self.bits, self.channel_dim, *self.values.shape]
        return {
            f"{prefix}.q": torch.from_numpy(pack_signed(self.values.numpy(), self.bits)),
            f"{prefix}.scale": self.scale.contiguous(),
            f"{prefix}.qinfo": torch.tensor(info, dtype=torch.int64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> "QuantizedWeight":
        bits, channel_dim, *shape = tensors[f"{prefix}.qinfo"].tolist()
        count = int(np.prod(shape))
        packed = tensors[f"{prefix}.q"].numpy()
        if packed.size != -(-count * bits // 8):
            raise ValueError(f"{prefix}: packed size does not match its shape and bit width")
        values = torch.from_numpy(unpack_signed(packed, bits, count)).reshape(shape)
        return cls(values, tensors[f"{prefix}.scale"], int(bits), int(channel_dim))


def is_quantized(tensors: dict[str, Tensor], prefix: str) -> bool:
    return f"{prefix}.qinfo" in tensors


def float_state(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The float32 state dict of the module stored under `prefix.` (quantized or not)."""
    out: dict[str, Tensor] = {}
    start = f"{prefix}."
    for key, value in tensors.items():
        if not key.startswith(start):
            continue
        name = key[len(start):]
        if name.endswith(".weight.qinfo"):
            weight = name[: -len(".qinfo")]
            out[weight] = QuantizedWeight.from_tensors(tensors, key[: -len(".qinfo")]).dequantize()
        elif not name.endswith((".weight.q", ".weight.scale")):
            out[name] = value.float()
    return out
