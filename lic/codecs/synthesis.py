"""The hyperprior's synthesis transform g_s, rewritten for decoding speed.

g_s is four 5x5 stride-2 transposed convolutions with inverse GDN between them. As trained
(CompressAI's layers) most of a decode went to `conv_transpose2d`, whose float64 CPU kernel
is a matrix product followed by a scatter-add (col2im) over 25 overlapping taps, and to GDN,
whose parameters are re-derived and whose 1x1 convolution goes through im2col on each call.
Here each layer is prepared once, at load:

- a transposed convolution becomes its *sub-pixel* form: a stride-1 3x3 convolution with four
  times the output channels (one group per output phase, the taps a phase does not use are
  zero), then a pixel shuffle. Both forms compute the same sums of the same products; they
  add them in a different order, so float64 results differ by rounding (~1e-16 relative),
  which the goldens and a Kodak sweep (README, "Speed") show moves no 8-bit pixel;
- inverse GDN, x * sqrt(beta + gamma x^2), is one matrix product on the channels with its
  reparametrised beta and gamma computed once.

`exact=True` runs in float64 (the decoder every machine agrees on, and what video's closed
loop needs); `exact=False` in float32 with channels-last tensors (oneDNN kernels): several
times faster, and its 8-bit pixels can differ from the exact ones by a grey level in a few
pixels per million (README, "Speed"), and across machines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor, nn

# Kernel index of the transposed convolution (5x5, stride 2, padding 2, output padding 1)
# used by each output phase (even, odd) at input offsets -1, 0, +1; None: no tap.
_PHASE_TAPS = ((4, 2, 0), (None, 3, 1))


def subpixel_weight(weight: Tensor) -> Tensor:
    """The [4 * out, in, 3, 3] convolution weight whose output, pixel-shuffled by 2, is the
    transposed convolution with `weight` [in, out, 5, 5] (stride 2, padding 2, output padding 1)."""
    c_in, c_out = weight.shape[:2]
    out = weight.new_zeros(c_out, 2, 2, c_in, 3, 3)
    for dy, rows in enumerate(_PHASE_TAPS):
        for dx, cols in enumerate(_PHASE_TAPS):
            for a, ky in enumerate(rows):
                for b, kx in enumerate(cols):
                    if ky is not None and kx is not None:
                        out[:, dy, dx, :, a, b] = weight[:, :, ky, kx].T
    return out.reshape(4 * c_out, c_in, 3, 3)


class FastSynthesis:
    """g_s (an `nn.Sequential` of 5x5 stride-2 `ConvTranspose2d` and inverse `GDN`) prepared
    for decoding in float64 (`exact`) or float32."""

    def __init__(self, g_s: nn.Sequential, exact: bool, device: torch.device | str = "cpu") -> None:
        self.dtype = torch.float64 if exact else torch.float32
        self.memory_format = torch.contiguous_format if exact else torch.channels_last
        self.layers: list[tuple[str, Tensor, Tensor]] = []
        with torch.no_grad():
            for layer in g_s:
                if isinstance(layer, nn.ConvTranspose2d):
                    if layer.kernel_size != (5, 5) or layer.stride != (2, 2) or layer.padding != (2, 2):
                        raise ValueError(f"no sub-pixel form for {layer}")
                    weight = layer.weight.detach().to(device, self.dtype)
                    bias = layer.bias.detach().to(device, self.dtype).clone()
                    if exact:
                        self.layers.append(("taps", phase_taps(weight), bias))
                    else:
                        w = subpixel_weight(weight).contiguous(memory_format=self.memory_format)
                        self.layers.append(("deconv", w, bias))
                elif isinstance(layer, GDN) and layer.inverse:
                    beta = layer.beta_reparam(layer.beta).to(device, self.dtype)
                    gamma = layer.gamma_reparam(layer.gamma).to(device, self.dtype)
                    self.layers.append(("igdn", gamma.contiguous(), beta.contiguous()))
                else:
                    raise ValueError(f"g_s layer {layer} is not supported")

    @torch.no_grad()
    def __call__(self, y_hat: Tensor) -> Tensor:
        x = y_hat.to(self.dtype).contiguous(memory_format=self.memory_format)
        for kind, w, b in self.layers:
            if kind == "taps":
                x = _deconv_by_taps(x, w, b)
            elif kind == "deconv":
                x = F.pixel_shuffle(F.conv2d(x, w, padding=1), 2)
                x = x.contiguous(memory_format=self.memory_format).add_(b.view(1, -1, 1, 1))
            else:
                x = _inverse_gdn(x, w, b)
        return x


def phase_taps(weight: Tensor) -> Tensor:
    """[2, 2, 3, 3, out, in]: per output phase (dy, dx) and input offset (a - 1, b - 1), the
    [out, in] matrix of the transposed convolution's tap there (zeros where it has none)."""
    c_in, c_out = weight.shape[:2]
    out = weight.new_zeros(2, 2, 3, 3, c_out, c_in)
    for dy, rows in enumerate(_PHASE_TAPS):
        for dx, cols in enumerate(_PHASE_TAPS):
            for a, ky in enumerate(rows):
                for b, kx in enumerate(cols):
                    if ky is not None and kx is not None:
                        out[dy, dx, a, b] = weight[:, :, ky, kx].T
    return out


def _deconv_by_taps(x: Tensor, taps: Tensor, bias: Tensor) -> Tensor:
    """The transposed convolution as a sum of matrix products, one per tap, each reading a
    shifted window of the zero-padded input in place (no im2col or col2im buffer): rows of
    the padded input are `wp` apart, so the window at offset (a, b) is the flat slice that
    starts at a * wp + b; its last two columns per row are wrap-around and are dropped."""
    n, c_in, h, w = x.shape
    c_out = taps.shape[-2]
    wp = w + 2
    padded = F.pad(x, (1, 1, 1, 2)).reshape(n, c_in, -1)  # one extra row: the last window's overrun
    out = x.new_empty(n, 2, 2, c_out, h * wp)
    length = h * wp
    for i in range(n):
        for dy, rows in enumerate(_PHASE_TAPS):
            for dx, cols in enumerate(_PHASE_TAPS):
                acc = out[i, dy, dx]
                first = True
                for a, ky in enumerate(rows):
                    for b, kx in enumerate(cols):
                        if ky is None or kx is None:
                            continue
                        window = padded[i, :, a * wp + b : a * wp + b + length]
                        if first:
                            torch.mm(taps[dy, dx, a, b], window, out=acc)
                            first = False
                        else:
                            acc.addmm_(taps[dy, dx, a, b], window)
    out = out.view(n, 2, 2, c_out, h, wp)[..., :w].permute(0, 3, 4, 1, 5, 2)
    return out.reshape(n, c_out, 2 * h, 2 * w).add_(bias.view(1, -1, 1, 1))


def _inverse_gdn(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """x * sqrt(beta + gamma x^2) (gamma acting on channels), as one matrix product."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        flat = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view: [pixels, channels]
        norm = torch.addmm(beta, flat * flat, gamma.T)
        return norm.sqrt_().mul_(flat).view(n, h, w, c).permute(0, 3, 1, 2)
    flat = x.reshape(c, h * w) if n == 1 else None
    if flat is None:
        return torch.cat([_inverse_gdn(x[i : i + 1], gamma, beta) for i in range(n)])
    norm = torch.addmm(beta.view(-1, 1), gamma, flat * flat)
    return norm.sqrt_().mul_(flat).view(n, c, h, w)
