"""The factorized-prior stage: symbols coded with one fixed table per channel.

The hyperprior codes z with it. Symbols are z rounded around the per-channel medians, which
the export snaps to the grid of `Z_STEP`, so that what the next stage reads (`on_grid`: z_hat
in units of Z_STEP) is an exact integer on every machine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lic.entropy import CdfTables
from lic.entropy.coder import decode_stream, encode_stream

Z_STEP = 1 / 16  # grid of z_hat as the integer network after this stage reads it


class FactorizedStage:
    """Codes [1, C, h, w] symbols, channel c with table c."""

    def __init__(self, tables: CdfTables, medians16: Tensor) -> None:
        self.tables = tables
        self.medians16 = medians16.view(1, -1, 1, 1).to(torch.float64)  # the medians in units of Z_STEP

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> "FactorizedStage":
        return cls(CdfTables.from_tensors(tensors, f"{prefix}_tables"), tensors[f"{prefix}_medians16"])

    @property
    def channels(self) -> int:
        return len(self.tables)

    def symbols(self, z: Tensor) -> Tensor:
        """z (float64, on the CPU) rounded around the medians."""
        return torch.round(z - self.medians16 * Z_STEP)

    def on_grid(self, symbols: Tensor) -> Tensor:
        """z_hat in units of Z_STEP (float64 integers): what the next stage's network reads."""
        return symbols.to(torch.float64) / Z_STEP + self.medians16

    def encode(self, symbols: Tensor) -> bytes:
        channels = torch.arange(symbols.shape[1]).view(1, -1, 1, 1).expand_as(symbols)
        values = symbols.to(torch.int64).numpy()
        del symbols  # the caller passes its only reference
        return encode_stream(values, channels.numpy(), self.tables)

    def decode(self, stream: bytes, height: int, width: int, what: str) -> Tensor:
        """The [1, C, height, width] symbols of `stream` (float64)."""
        shape = (1, self.channels, height, width)
        channels = np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape)
        return torch.from_numpy(decode_stream(stream, channels, self.tables, what)).to(torch.float64)
