"""Integer networks (Ballé, Johnston & Minnen, ICLR 2019) for exact entropy parameters.

The hyper-synthesis decides which probability table codes each latent. If the encoder and the
decoder disagree on a single table index, every later symbol decodes to garbage. Float
convolutions cannot promise agreement across CPUs, GPUs, BLAS libraries or thread counts, so
the hyper-synthesis is converted to a network whose weights, biases and activations are all
integers:

    acc = conv(x, W) + b                    (integers; |W| < 2**(bits-1), x < 2**act_bits)
    v   = floor((acc * m + 2**(s-1)) / 2**s) (per-channel rescale: integer m, power of 2 s)
    x'  = clip(v, 0, 2**act_bits - 1)       (QReLU; the last layer is linear)

The multiplier m (15 bits, Jacob et al. 2018) lets every output channel's weights span their
whole integer range: with a power-of-two rescale alone, a channel's largest weight could be
anywhere in (2**(bits-2), 2**(bits-1)), which wastes up to one bit; at 4 or 6 bits that made
the entropy parameters measurably worse (q4 with h_s at 6/4/6 bits: +17.7 % rate on Kodak).

It is evaluated in float64 on the CPU. Every partial sum, and `acc * m`, is an integer below 2**53
(checked when a network is built), so float64 adds and multiplies them exactly in any order,
and a power-of-two division and `floor` are exact too: every machine gets the same integers. (GPU convolution algorithms
such as FFT or Winograd would not be exact, which is why this always runs on the CPU; it
works at 1/64 of the image resolution and is cheap.)

`quantize_network` converts a trained float network (conv/deconv layers with ReLU between
them) by calibrating per-channel activation ranges on example inputs. Each layer's weights
can use fewer than 8 bits (mixed precision, `lic.quantization`); they are then stored packed
at that width and widened back to int8 at load, so the arithmetic above does not change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lic.weights import pack_signed, unpack_signed

#: Largest magnitude an accumulator may reach and still be exact in float64.
_EXACT_LIMIT = 2**53
#: Bits of the per-channel rescaling multiplier: m in [2**(MULTIPLIER_BITS-1), 2**MULTIPLIER_BITS].
MULTIPLIER_BITS = 15


@dataclass
class IntegerLayer:
    weight: Tensor  # int8 [out, in, k, k] (conv) or [in, out, k, k] (deconv)
    bias: Tensor  # int64 [out]
    shift: Tensor  # int64 [out]: divide by 2**shift (multiply if negative)
    transposed: bool
    stride: int
    padding: int
    output_padding: int
    clip: int | None  # QReLU upper bound, None for a linear output layer
    weight_bits: int = 8  # |weight| <= 2**(weight_bits-1) - 1; stored packed below 8 bits
    multiplier: Tensor | None = None  # int64 [out]: acc is multiplied by it before the shift; None: 1

    def __call__(self, x: Tensor) -> Tensor:
        w = self.weight.to(torch.float64)
        if self.transposed:
            acc = F.conv_transpose2d(
                x, w, stride=self.stride, padding=self.padding, output_padding=self.output_padding
            )
        else:
            acc = F.conv2d(x, w, stride=self.stride, padding=self.padding)
        acc = acc + self.bias.to(torch.float64).view(1, -1, 1, 1)
        if self.multiplier is not None:
            acc = acc * self.multiplier.to(torch.float64).view(1, -1, 1, 1)
        shift = self.shift.view(1, -1, 1, 1)
        down = torch.exp2(shift.clamp(min=0).to(torch.float64))
        up = torch.exp2((-shift).clamp(min=0).to(torch.float64))
        half = torch.where(shift > 0, down / 2, torch.zeros_like(down))
        v = torch.floor((acc + half) / down) * up
        if self.clip is not None:
            v = v.clamp(0, self.clip)
        return v

    def accumulator_bounds(self, input_bound: float) -> Tensor:
        """Worst-case |acc * m| per output channel for inputs bounded by `input_bound`."""
        w = self.weight.to(torch.float64).abs()
        per_out = w.sum(dim=(0, 2, 3) if self.transposed else (1, 2, 3))
        acc = per_out * input_bound + self.bias.abs().to(torch.float64)
        return acc * self.multiplier.to(torch.float64) if self.multiplier is not None else acc

    def output_bound(self, input_bound: float) -> float:
        """Worst-case |output|: the clip, or the rescaled accumulator bound (+1 for rounding)."""
        if self.clip is not None:
            return float(self.clip)
        down = torch.exp2(self.shift.to(torch.float64))
        return float((self.accumulator_bounds(input_bound) / down).max()) + 1

    def to_tensors(self, prefix: str) -> dict[str, Tensor]:
        geometry = [int(self.transposed), self.stride, self.padding, self.output_padding,
                    -1 if self.clip is None else self.clip, self.weight_bits]
        if self.weight_bits < 8:
            weight = {f"{prefix}.weight.q": torch.from_numpy(pack_signed(self.weight.numpy(), self.weight_bits)),
                      f"{prefix}.weight.shape": torch.tensor(self.weight.shape, dtype=torch.int64)}
        else:
            weight = {f"{prefix}.weight": self.weight.contiguous()}
        if self.multiplier is not None:
            weight[f"{prefix}.multiplier"] = self.multiplier.contiguous()
        return {
            **weight,
            f"{prefix}.bias": self.bias.contiguous(),
            f"{prefix}.shift": self.shift.contiguous(),
            f"{prefix}.geometry": torch.tensor(geometry, dtype=torch.int64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> "IntegerLayer":
        # Files written before mixed precision have five geometry entries and int8 weights;
        # files written before per-channel multipliers have none (m = 1).
        transposed, stride, padding, output_padding, clip, *bits = tensors[f"{prefix}.geometry"].tolist()
        weight_bits = bits[0] if bits else 8
        if weight_bits < 8:
            shape = tensors[f"{prefix}.weight.shape"].tolist()
            packed = tensors[f"{prefix}.weight.q"].numpy()
            weight = torch.from_numpy(unpack_signed(packed, weight_bits, int(torch.tensor(shape).prod()))).reshape(shape)
        else:
            weight = tensors[f"{prefix}.weight"]
        return cls(
            weight, tensors[f"{prefix}.bias"], tensors[f"{prefix}.shift"],
            bool(transposed), stride, padding, output_padding, None if clip < 0 else clip, weight_bits,
            tensors.get(f"{prefix}.multiplier"),
        )


class IntegerNet:
    """A chain of `IntegerLayer`s; input and output are integer-valued float64 tensors."""

    def __init__(self, layers: list[IntegerLayer], input_bound: int) -> None:
        self.layers = layers
        self.input_bound = input_bound
        bound = float(input_bound)
        for layer in layers:
            if float(layer.accumulator_bounds(bound).max()) >= _EXACT_LIMIT:
                raise ValueError("integer network could overflow float64's exact range")
            bound = layer.output_bound(bound)

    def __call__(self, x: Tensor) -> Tensor:
        x = x.detach().to("cpu", torch.float64).clamp(-self.input_bound, self.input_bound)
        with torch.no_grad():
            for layer in self.layers:
                x = layer(x)
        return x

    def to_tensors(self, prefix: str) -> dict[str, Tensor]:
        out = {f"{prefix}.input_bound": torch.tensor([self.input_bound], dtype=torch.int64)}
        for i, layer in enumerate(self.layers):
            out.update(layer.to_tensors(f"{prefix}.{i}"))
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> "IntegerNet":
        count = len({k.split(".")[-2] for k in tensors if k.startswith(f"{prefix}.") and k.endswith(".geometry")})
        layers = [IntegerLayer.from_tensors(tensors, f"{prefix}.{i}") for i in range(count)]
        return cls(layers, int(tensors[f"{prefix}.input_bound"].item()))


def _conv_layers(net: nn.Sequential) -> list[tuple[nn.Module, bool]]:
    """(conv or deconv, followed by ReLU?) for each convolution in `net`."""
    mods = list(net)
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            relu = i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)
            out.append((m, relu))
        elif not isinstance(m, nn.ReLU):
            raise TypeError(f"cannot convert {type(m).__name__} to integer arithmetic")
    return out


@torch.no_grad()
def quantize_network(
    net: nn.Sequential,
    calibration: Tensor,
    input_step: float,
    output_step: Tensor,
    input_bound: int,
    weight_bits: "int | Sequence[int]" = 8,
    act_bits: int = 10,
    headroom: float = 1.25,
) -> IntegerNet:
    """Converts `net` so that `IntegerNet(x / input_step) ≈ net(x) / output_step`.

    calibration: example inputs (on the input grid) used to find each hidden channel's
    range; ranges get `headroom` so that larger images rarely saturate.
    output_step: per output channel grid of the last layer (e.g. 1 for a table index).
    weight_bits: one bit width for every layer, or one per convolution.
    """
    convs = _conv_layers(net)
    bits_per_layer = [weight_bits] * len(convs) if isinstance(weight_bits, int) else list(weight_bits)
    if len(bits_per_layer) != len(convs) or not all(2 <= b <= 8 for b in bits_per_layer):
        raise ValueError(f"weight_bits must be in 2..8, one value or one per layer ({len(convs)})")
    amax = 2**act_bits - 1
    layers: list[IntegerLayer] = []
    x_float = calibration.to(torch.float64)
    in_step = torch.full((x_float.shape[1],), float(input_step), dtype=torch.float64)
    in_live = torch.ones_like(in_step, dtype=torch.bool)
    for idx, ((conv, relu), bits) in enumerate(zip(convs, bits_per_layer)):
        wmax = 2 ** (bits - 1) - 1
        conv = copy.deepcopy(conv).to(torch.float64)  # `net` itself is left as it is
        y_float = conv(x_float)
        if idx == len(convs) - 1:
            out_step = output_step.to(torch.float64)
            out_live = torch.ones_like(out_step, dtype=torch.bool)
        else:
            top = y_float.clamp(min=0).amax(dim=(0, 2, 3)) * headroom
            out_live = top > 0  # a ReLU channel never active in calibration is dropped
            out_step = torch.where(out_live, top / amax, torch.ones_like(top))
        transposed = isinstance(conv, nn.ConvTranspose2d)
        w = conv.weight.detach().to(torch.float64)
        # Fold the input grid into the weights: W_eff[o, i] = W[o, i] * in_step[i]; inputs that
        # were dead in calibration get weight 0, or their arbitrary grid would set the scale.
        in_scale = torch.where(in_live, in_step, torch.zeros_like(in_step))
        w_eff = w * (in_scale.view(-1, 1, 1, 1) if transposed else in_scale.view(1, -1, 1, 1))
        per_out = w_eff.abs().amax(dim=(0, 2, 3) if transposed else (1, 2, 3))
        # One accumulator step is worth `unit` in real terms; the finest grid that keeps every
        # weight within +-wmax is per_out / wmax. Output = acc * unit / out_step, realised as
        # acc * m / 2**s with m of MULTIPLIER_BITS bits. (Channels whose weights are all 0 keep
        # unit = out_step: only their bias matters.)
        ratio = torch.where(per_out > 0, per_out / (wmax * out_step), torch.ones_like(per_out))
        shift = (MULTIPLIER_BITS - 1 - torch.floor(torch.log2(ratio))).clamp(min=0).to(torch.int64)
        multiplier = torch.round(ratio * torch.exp2(shift.to(torch.float64))).to(torch.int64)
        unit = out_step * multiplier.to(torch.float64) * torch.exp2(-shift.to(torch.float64))
        view = (1, -1, 1, 1) if transposed else (-1, 1, 1, 1)
        weight = torch.round(w_eff / unit.view(view)).clamp(-wmax, wmax).to(torch.int8)
        bias = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros_like(unit)
        layers.append(IntegerLayer(
            weight=weight,
            bias=torch.round(bias / unit).to(torch.int64),
            shift=shift,
            transposed=transposed,
            stride=conv.stride[0],
            padding=conv.padding[0],
            output_padding=conv.output_padding[0] if transposed else 0,
            clip=amax if relu else None,
            weight_bits=bits,
            multiplier=multiplier,
        ))
        x_float = torch.relu(y_float) if relu else y_float
        in_step, in_live = out_step, out_live
    return IntegerNet(layers, input_bound)
