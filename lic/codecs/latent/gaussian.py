"""The Gaussian-conditional stage: symbols coded with one table per element, chosen by the
scale index and centred on the mean that an exact integer network derived for it.

The tables are fixed at export: one per entry of a table of 64 log-spaced scales from 0.11 to
256. A latent y is coded as round((y - mean) / Δ) with table `index`; Δ = 1, or Δ = 2**(k/64)
under rate control (k, the step code, goes in the file header), with the tables moved
`table_shift(k)` places lower (the Gaussians of scale / Δ, to within half a table step). Δ is
a 24-bit binary fraction and the shift an integer, so the decoder derives both exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lic.entropy import CdfTables
from lic.entropy.coder import decode_stream, encode_stream

SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
SCALE_LOG_STEP = math.log(SCALE_MAX / SCALE_MIN) / (SCALE_LEVELS - 1)
MEAN_STEP = 1 / 16  # grid of the means the integer network outputs
STEP_DIVISIONS = 64  # quantisation step codes per octave of step size (rate control)
MAX_STEP = 64  # |step code|: steps from 1/2 to 2, enough to cover the gap between two qualities


def scale_table() -> Tensor:
    return torch.exp(math.log(SCALE_MIN) + SCALE_LOG_STEP * torch.arange(SCALE_LEVELS, dtype=torch.float64))


def step_size(step: int) -> float:
    """Δ for a quantisation step code: 2**(step/64) rounded to a multiple of 2**-24 (exact on
    every machine, as the libm's last bit of 2**x is not)."""
    return round(2 ** (step / STEP_DIVISIONS) * 2**24) / 2**24


def table_shift(step: int) -> int:
    """How many scale-table entries lower the tables of y / Δ are (Δ's scale-table steps)."""
    return round(step / STEP_DIVISIONS * math.log(2) / SCALE_LOG_STEP)


def shifted(index: Tensor, step: int) -> Tensor:
    """Table indices for y / Δ: `index` moved down by `table_shift(step)`, kept in the table."""
    if not step:
        return index
    return (index.to(torch.int16) - table_shift(step)).clamp_(0, SCALE_LEVELS - 1).to(torch.uint8)


def parameters_from(out: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    """An integer network's output [1, 2 * channels, h, w] -> (scale-table index per element,
    uint8; means): the first `channels` are indices, the rest means in units of MEAN_STEP."""
    return out[:, :channels].clamp(0, SCALE_LEVELS - 1).to(torch.uint8), out[:, channels:] * MEAN_STEP


class GaussianConditionalStage:
    """Codes symbols given a table index per element; the means are the caller's to remove."""

    def __init__(self, tables: CdfTables) -> None:
        self.tables = tables

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> "GaussianConditionalStage":
        return cls(CdfTables.from_tensors(tensors, f"{prefix}_tables"))

    @staticmethod
    def quantise(y: Tensor, means: Tensor, step: int) -> Tensor:
        """The symbols of y (float64, on the CPU): round((y - means) / step_size(step))."""
        symbols = y.to("cpu", torch.float64, copy=True).sub_(means)
        if step:
            symbols.div_(step_size(step))
        return symbols.round_()

    @staticmethod
    def dequantise(symbols: Tensor, means: Tensor, step: int) -> Tensor:
        """y_hat from symbols; in place on `symbols` (one latent-sized array less at the peak)."""
        if step:
            symbols.mul_(step_size(step))
        return symbols.add_(means)

    def encode(self, symbols: Tensor, index: Tensor) -> bytes:
        """The stream of `symbols` with tables `index` (already `shifted` for the step)."""
        values = symbols.to(torch.int64).numpy()
        del symbols  # the caller passes its only reference: a latent-sized array less at the peak
        return encode_stream(values, index.numpy(), self.tables)

    def decode(self, stream: bytes, index: Tensor, what: str) -> Tensor:
        return torch.from_numpy(decode_stream(stream, index.numpy(), self.tables, what)).to(torch.float64)
