"""The hyperprior's synthesis transform g_s, prepared once at load for decoding speed.

g_s is four 5x5 stride-2 transposed convolutions with inverse GDN between them. As trained
(CompressAI's layers), a float64 decode spent most of its time in `conv_transpose2d`, whose
float64 CPU kernel (no oneDNN kernel exists for float64) is one matrix product into a
25-taps-deep column buffer that is zero-filled and then scatter-added (col2im), and in GDN,
whose parameters were re-derived and whose 1x1 convolution went through im2col on each call.

- Exact (float64; what every machine agrees on, and what video's closed loop needs): each
  output phase of a transposed convolution (even/odd row and column) is a stride-1
  convolution with 9, 6, 6 or 4 of the 25 taps, computed as one matrix product per tap on
  a shifted window of the zero-padded input, read in place, accumulated in cache-sized
  column blocks. Inverse GDN, x * sqrt(beta + gamma x^2), is one matrix product on the
  channels with beta and gamma derived once. The sums are those of the trained network,
  added in another order: float64 results differ by ~1e-15, which moved no 8-bit pixel of
  the goldens or of Kodak at q1/q4/q8 (README, "Speed").
- Fast (float32, channels-last, oneDNN kernels): several times faster; a few pixel values
  per million differ from the exact decode by one grey level, and may differ across machines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor, nn

# Kernel index of the transposed convolution (5x5, stride 2, padding 2, output padding 1)
# used by each output phase (even, odd) at input offsets -1, 0, +1; None: no tap.
_PHASE_TAPS = ((4, 2, 0), (None, 3, 1))
_BLOCK = 2048  # output columns per block of the exact path


class Synthesis:
    """g_s (an `nn.Sequential` of 5x5 stride-2 `ConvTranspose2d` and inverse `GDN`) prepared
    for decoding in float64 (`exact`) or float32."""

    def __init__(self, g_s: nn.Sequential, exact: bool, device: torch.device | str = "cpu") -> None:
        self.dtype = torch.float64 if exact else torch.float32
        self.memory_format = torch.contiguous_format if exact else torch.channels_last
        self.layers: list[tuple[str, Tensor, Tensor]] = []
        with torch.no_grad():
            for layer in g_s:
                if isinstance(layer, nn.ConvTranspose2d):
                    shape = (layer.kernel_size, layer.stride, layer.padding, layer.output_padding)
                    if shape != ((5, 5), (2, 2), (2, 2), (1, 1)):
                        raise ValueError(f"g_s layer {layer} is not a 5x5 stride-2 transposed convolution")
                    weight = layer.weight.detach().to(device, self.dtype)
                    bias = layer.bias.detach().to(device, self.dtype).clone()
                    if exact:
                        self.layers.append(("taps", phase_taps(weight), bias))
                    else:
                        self.layers.append(("deconv", weight.contiguous(memory_format=self.memory_format), bias))
                elif isinstance(layer, GDN) and layer.inverse:
                    beta = layer.beta_reparam(layer.beta).to(device, self.dtype)
                    gamma = layer.gamma_reparam(layer.gamma).to(device, self.dtype)
                    self.layers.append(("igdn", gamma.contiguous(), beta.contiguous()))
                else:
                    raise ValueError(f"g_s layer {layer} is not supported")
        if self.layers[-1][0] not in ("taps", "deconv"):
            raise ValueError("g_s must end with a transposed convolution")

    @torch.no_grad()
    def __call__(self, y_hat: Tensor) -> Tensor:
        x = y_hat.to(self.dtype).contiguous(memory_format=self.memory_format)
        if self.dtype == torch.float64:
            return self._exact(x)
        for kind, w, b in self.layers:
            if kind == "deconv":
                x = F.conv_transpose2d(x, w, b, stride=2, padding=2, output_padding=1)
            else:
                x = _inverse_gdn(x, w, b)
        return x

    def _exact(self, x: Tensor) -> Tensor:
        """Every intermediate is kept inside the zero border the next layer's taps read, so
        no layer copies its input into a padded one: each transposed convolution writes its
        output there, and inverse GDN keeps the border zero (0 * sqrt(beta) = 0)."""
        h, w = x.shape[-2:]
        x = F.pad(x, (1, 1, 1, 2))
        last = len(self.layers) - 1
        for k, (kind, a, b) in enumerate(self.layers):
            if kind == "taps":
                x, h, w = _deconv_by_taps(x, h, w, a, b, padded_output=k < last)
            else:
                x = _inverse_gdn(x, a, b)
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


def _deconv_by_taps(padded: Tensor, h: int, w: int, taps: Tensor, bias: Tensor,
                    padded_output: bool) -> tuple[Tensor, int, int]:
    """The transposed convolution of the h x w input held in `padded` ([n, c, h + 3, w + 2]:
    one zero row above, two below, one zero column each side) as a sum of matrix products,
    one per tap, each reading a shifted window of `padded` in place (no im2col or col2im
    buffer): its rows are `wp` apart, so the window at offset (a, b) is the flat slice that
    starts at a * wp + b; its last two columns per row wrap around and are dropped. Columns
    are done `_BLOCK` at a time so that the accumulator stays in cache over the taps (every
    output column is its own sum, so the blocks do not change any result).

    Returns the 2h x 2w output (with the bias), inside such a zero border if `padded_output`."""
    n, c_in = padded.shape[:2]
    c_out = taps.shape[-2]
    wp, length = w + 2, h * (w + 2)
    flat = padded.reshape(n, c_in, -1)
    out = padded.new_empty(n, 2, 2, c_out, length)
    for i in range(n):
        for s in range(0, length, _BLOCK):
            e = min(s + _BLOCK, length)
            for dy, rows in enumerate(_PHASE_TAPS):
                for dx, cols in enumerate(_PHASE_TAPS):
                    used = [(a, b) for a, ky in enumerate(rows) for b, kx in enumerate(cols)
                            if ky is not None and kx is not None]
                    acc = out[i, dy, dx, :, s:e]
                    for j, (a, b) in enumerate(used):
                        window = flat[i, :, a * wp + b + s : a * wp + b + e]
                        if j == 0:
                            torch.mm(taps[dy, dx, a, b], window, out=acc)
                        else:
                            acc.addmm_(taps[dy, dx, a, b], window)
    phases = out.view(n, 2, 2, c_out, h, wp)[..., :w].permute(0, 3, 4, 1, 5, 2)  # [n, c, h, dy, w, dx]
    if padded_output:
        result = padded.new_empty(n, c_out, 2 * h + 3, 2 * w + 2)
        for border in (result[:, :, 0], result[:, :, 2 * h + 1 :], result[..., 0], result[..., 2 * w + 1 :]):
            border.zero_()
        inner = result[:, :, 1 : 2 * h + 1, 1 : 2 * w + 1]
    else:
        result = inner = padded.new_empty(n, c_out, 2 * h, 2 * w)
    torch.add(phases, bias.view(1, -1, 1, 1, 1, 1), out=inner.view(n, c_out, h, 2, w, 2))
    return result, 2 * h, 2 * w


def _inverse_gdn(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """x * sqrt(beta + gamma x^2) (gamma acting on channels) as matrix products, in place.

    x is the caller's own intermediate. Float64 (NCHW) runs `_BLOCK` pixels at a time, so
    that its temporaries stay in cache and memory does not hold two more copies of x."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        flat = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view: [pixels, channels]
        norm = torch.addmm(beta, flat * flat, gamma.T)
        return flat.mul_(norm.sqrt_()).view(n, h, w, c).permute(0, 3, 1, 2)
    flat = x.reshape(n, c, h * w)
    column = beta.view(-1, 1)
    for i in range(n):
        for s in range(0, h * w, _BLOCK):
            block = flat[i, :, s : s + _BLOCK]
            block.mul_(torch.addmm(column, gamma, block * block).sqrt_())
    return x
