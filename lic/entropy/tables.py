"""Integer CDF tables: the only probabilities the entropy coder ever sees.

Why integers: the encoder and the decoder must build bit-identical probability models, and
floating-point Gaussian or logistic CDFs differ in the last bits between libraries, CPUs and
GPUs. So the float densities (CompressAI's `EntropyBottleneck` and `GaussianConditional`) are
turned into integer CDFs once, when a model is exported, and those integers are stored with
the weights. At run time the coder only reads them.

Layout (CompressAI's): table `t` covers the integer values `offset[t] ... offset[t] + n - 1`
with `n = length[t] - 2`, plus one overflow bin for every value outside that range; its CDF
has `length[t]` entries starting at 0 and ending at `2**precision`. Tables are stored ragged:
the CDFs one after another in `cdf`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class CdfTables:
    cdf: np.ndarray  # int32, all tables' CDFs concatenated
    length: np.ndarray  # int32 [T], CDF length of each table (values + overflow + 1)
    offset: np.ndarray  # int32 [T], the value coded by symbol 0 of each table
    precision: int = 16

    def __post_init__(self) -> None:
        if self.cdf.ndim != 1 or self.length.shape != self.offset.shape:
            raise ValueError("CdfTables: cdf must be flat and length/offset of equal shape")
        if int(self.length.sum()) != self.cdf.size:
            raise ValueError("CdfTables: lengths do not add up to the CDF array")

    @classmethod
    def from_compressai(cls, model: torch.nn.Module) -> "CdfTables":
        """Reads the tables CompressAI built in `update()` / `update_scale_table()`."""
        padded = model._quantized_cdf.cpu().numpy().astype(np.int32)
        length = model._cdf_length.cpu().numpy().astype(np.int32)
        offset = model._offset.cpu().numpy().astype(np.int32)
        flat = np.concatenate([row[:n] for row, n in zip(padded, length)])
        return cls(flat, length, offset, model.entropy_coder_precision)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "CdfTables":
        return cls(
            tensors[f"{prefix}.cdf"].numpy().astype(np.int32),
            tensors[f"{prefix}.length"].numpy().astype(np.int32),
            tensors[f"{prefix}.offset"].numpy().astype(np.int32),
            int(tensors[f"{prefix}.precision"].item()),
        )

    def to_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.cdf": torch.from_numpy(self.cdf.copy()),
            f"{prefix}.length": torch.from_numpy(self.length.copy()),
            f"{prefix}.offset": torch.from_numpy(self.offset.copy()),
            f"{prefix}.precision": torch.tensor([self.precision], dtype=torch.int32),
        }

    def __len__(self) -> int:
        return int(self.length.size)

    @cached_property
    def _starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.length)[:-1]]).astype(np.int64)

    def pmf(self, table: int) -> np.ndarray:
        """Integer symbol frequencies of one table (overflow bin last), as float64.

        The values are exact integers, so constriction's fixed-point quantisation of them
        is the same on every machine.
        """
        start = self._starts[table]
        cdf = self.cdf[start : start + self.length[table]].astype(np.int64)
        freq = np.diff(cdf)
        if (freq <= 0).any() or cdf[-1] != 1 << self.precision:
            raise ValueError(f"CDF table {table} is not a valid quantised CDF")
        return freq.astype(np.float64)

    def num_values(self, table: int) -> int:
        """How many values table `table` codes directly (without the overflow bin)."""
        return int(self.length[table]) - 2

    def digest(self) -> bytes:
        h = hashlib.sha256()
        for a in (self.cdf, self.length, self.offset):
            h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
        h.update(self.precision.to_bytes(1, "little"))
        return h.digest()
