"""Entropy coding of VQ index maps with a context model in exact integer arithmetic.

The index map (one codebook index per 16x16 block) is coded in three passes:

    pass 0  anchors   (even row, even column)   static per-level table (`CdfTables`)
    pass 1  centres   (odd row, odd column)     context: the 4 diagonal anchors
    pass 2  edges     (row + column odd)        context: the 4 direct neighbours

so that every context consists of indices the decoder already has. The probability of
index k given the neighbours n_d (d one of 8 directions) is a log-bilinear model:

    score(k) = bias_p[k] + sum_d <E_d[n_d], F_p[k]> + sum_d [k = n_d] * repeat_d[n_d]
    freq(k)  = EXP[min((max_k score - score(k)) >> shift, len(EXP) - 1)]

The low-rank term says which codes go together; the repeat term says how likely a code is
to repeat its neighbour exactly (flat sky does, texture does not), which a low-rank product
cannot express. E, F (int8), bias, repeat (int32), shift and the table EXP are integers
stored in the model file. The scores are
integers below 2**24, summed in float64 (exact in any order, so BLAS may be used), and the
frequencies are table look-ups: encoder and decoder derive the same integer frequencies on
every machine and thread count. constriction's `Categorical(perfect=False)` turns each row
of integer frequencies into the same fixed-point model everywhere (as with `CdfTables`).
A digest of all derived rows goes into the header's check field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from lic.entropy.coder import check_consumed, checked_decode, decode_symbols, encode_symbols, stream_decoder
from lic.entropy.tables import CdfTables
from lic.errors import FormatError

#: (row, column) offsets of the 8 neighbour directions; passes 1 and 2 use 4 each.
DIRECTIONS = ((-1, -1), (-1, 1), (1, -1), (1, 1), (-1, 0), (1, 0), (0, -1), (0, 1))
PASS_DIRECTIONS = {1: (0, 1, 2, 3), 2: (4, 5, 6, 7)}
FREQ_BITS = 16  # largest frequency in a row (the most likely index)
_CHUNK = 2048  # positions per vectorised coder call (bounds memory on huge images)


def pass_masks(height: int, width: int) -> list[np.ndarray]:
    """Boolean [height, width] masks of passes 0, 1, 2."""
    i, j = np.mgrid[0:height, 0:width]
    return [(i % 2 == 0) & (j % 2 == 0), (i % 2 == 1) & (j % 2 == 1), (i + j) % 2 == 1]


def neighbours(indices: np.ndarray, positions: np.ndarray, direction: int) -> np.ndarray:
    """Index of the neighbour of each (row, column) in `positions` in one direction; -1
    where it falls outside the map."""
    di, dj = DIRECTIONS[direction]
    h, w = indices.shape
    i, j = positions[:, 0] + di, positions[:, 1] + dj
    inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
    out = np.full(positions.shape[0], -1, dtype=np.int64)
    out[inside] = indices[i[inside], j[inside]]
    return out


def static_table(counts: np.ndarray, precision: int = 16) -> CdfTables:
    """One `CdfTables` table for values 0..K-1 from symbol counts: every value keeps a
    frequency of at least 1, the (never used) overflow bin exactly 1."""
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.size
    budget = (1 << precision) - 1 - k  # after the minimum of 1 per value and the overflow bin
    if budget < 0:
        raise ValueError(f"{k} values do not fit a {precision}-bit table")
    share = counts / max(counts.sum(), 1.0) * budget
    freq = np.floor(share).astype(np.int64)
    remainder = budget - int(freq.sum())
    freq[np.argsort(-(share - freq), kind="stable")[:remainder]] += 1
    freq = np.concatenate([freq + 1, [1]])
    cdf = np.concatenate([[0], np.cumsum(freq)]).astype(np.int32)
    return CdfTables(cdf, np.array([cdf.size], np.int32), np.array([0], np.int32), precision)


def pack_fixed_length(indices: np.ndarray, bits: int) -> bytes:
    """The index map at `bits` bits per index (row-major, most significant bit first): the
    fallback for maps the context model would code in more bits than that."""
    flat = np.asarray(indices, dtype=np.int64).ravel()
    if flat.min(initial=0) < 0 or flat.max(initial=0) >= 1 << bits:
        raise ValueError(f"index outside 0..{(1 << bits) - 1}")
    planes = (flat[:, None] >> np.arange(bits - 1, -1, -1)) & 1
    return np.packbits(planes.astype(np.uint8).ravel()).tobytes()


def unpack_fixed_length(data: bytes, shape: tuple[int, int], bits: int) -> np.ndarray:
    """Inverse of `pack_fixed_length`; a ValueError if `data` has the wrong length."""
    count = shape[0] * shape[1]
    if len(data) != (count * bits + 7) // 8:
        raise ValueError("the fixed-length index stream has the wrong length")
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits].reshape(count, bits)
    return (planes.astype(np.int64) << np.arange(bits - 1, -1, -1)).sum(axis=1).reshape(shape)


@dataclass(frozen=True, eq=False)
class IndexContextModel:
    """The integer entropy model of one level's index maps (K codes)."""

    static: CdfTables
    embed: np.ndarray  # int8 [8, K, r], one embedding table per direction
    out: np.ndarray  # int8 [2, K, r], passes 1 and 2
    bias: np.ndarray  # int32 [2, K]
    repeat: np.ndarray  # int32 [8, K], bonus for equalling the neighbour in that direction
    exp_table: np.ndarray  # int64 [T], decreasing from 2**FREQ_BITS to 1
    shift: int

    @property
    def size(self) -> int:
        return self.embed.shape[1]

    def frequencies(self, indices: np.ndarray, positions: np.ndarray, pass_id: int) -> np.ndarray:
        """Integer frequency rows [len(positions), K] (as float64) for one pass."""
        r = self.embed.shape[2]
        context = np.zeros((positions.shape[0], r), dtype=np.float64)
        found = [(d, neighbours(indices, positions, d)) for d in PASS_DIRECTIONS[pass_id]]
        for d, n in found:
            context[n >= 0] += self.embed[d, n[n >= 0]]
        scores = context @ self.out[pass_id - 1].astype(np.float64).T + self.bias[pass_id - 1]
        scores = scores.astype(np.int64)
        for d, n in found:
            rows = np.flatnonzero(n >= 0)
            np.add.at(scores, (rows, n[rows]), self.repeat[d, n[rows]])
        gap = (scores.max(axis=1, keepdims=True) - scores) >> self.shift
        return self.exp_table[np.minimum(gap, self.exp_table.size - 1)].astype(np.float64)

    def _chunks(self, indices: np.ndarray, pass_id: int, mask: np.ndarray, digest):
        positions = np.argwhere(mask)
        for start in range(0, positions.shape[0], _CHUNK):
            chunk = positions[start : start + _CHUNK]
            freq = self.frequencies(indices, chunk, pass_id)
            digest.update(freq.astype("<i4").tobytes())
            yield chunk, freq

    def encode(self, indices: np.ndarray) -> tuple[bytes, bytes]:
        """The coded index map [h, w] and the 4-byte digest of every derived frequency row."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.min(initial=0) < 0 or indices.max(initial=0) >= self.size:
            raise ValueError("index outside the codebook")
        masks = pass_masks(*indices.shape)
        encoder = constriction.stream.queue.RangeEncoder()
        encode_symbols(encoder, indices[masks[0]], np.zeros(int(masks[0].sum()), np.int64), self.static)
        digest = hashlib.blake2b(digest_size=4)
        family = constriction.stream.model.Categorical(perfect=False)
        for pass_id in (1, 2):
            for chunk, freq in self._chunks(indices, pass_id, masks[pass_id], digest):
                encoder.encode(indices[chunk[:, 0], chunk[:, 1]].astype(np.int32), family, freq)
        return encoder.get_compressed().astype("<u4").tobytes(), digest.digest()

    def decode(self, stream: bytes, height: int, width: int) -> tuple[np.ndarray, bytes]:
        """Inverse of `encode`: the index map and the digest this machine derived."""
        decoder = stream_decoder(stream, "index stream")
        masks = pass_masks(height, width)
        indices = np.full((height, width), -1, dtype=np.int64)
        anchors = decode_symbols(decoder, np.zeros(int(masks[0].sum()), np.int64), self.static)
        if anchors.size and (anchors.min() < 0 or anchors.max() >= self.size):
            raise FormatError("the index stream is corrupted (an index outside the codebook)")
        indices[masks[0]] = anchors
        digest = hashlib.blake2b(digest_size=4)
        family = constriction.stream.model.Categorical(perfect=False)
        for pass_id in (1, 2):
            for chunk, freq in self._chunks(indices, pass_id, masks[pass_id], digest):
                indices[chunk[:, 0], chunk[:, 1]] = checked_decode(decoder, family, freq)
        check_consumed(decoder, stream, indices.size, "index stream")
        return indices, digest.digest()

    def to_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        out = self.static.to_tensors(f"{prefix}.static")
        out.update({
            f"{prefix}.embed": torch.from_numpy(self.embed.copy()),
            f"{prefix}.out": torch.from_numpy(self.out.copy()),
            f"{prefix}.bias": torch.from_numpy(self.bias.copy()),
            f"{prefix}.repeat": torch.from_numpy(self.repeat.copy()),
            f"{prefix}.exp": torch.from_numpy(self.exp_table.astype(np.int32)),
            f"{prefix}.shift": torch.tensor([self.shift], dtype=torch.int32),
        })
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "IndexContextModel":
        return cls(
            CdfTables.from_tensors(tensors, f"{prefix}.static"),
            tensors[f"{prefix}.embed"].numpy().astype(np.int8),
            tensors[f"{prefix}.out"].numpy().astype(np.int8),
            tensors[f"{prefix}.bias"].numpy().astype(np.int32),
            tensors[f"{prefix}.repeat"].numpy().astype(np.int32),
            tensors[f"{prefix}.exp"].numpy().astype(np.int64),
            int(tensors[f"{prefix}.shift"].item()),
        )

    def digest(self) -> bytes:
        """Identity of the tables (tests compare fits with it)."""
        h = hashlib.sha256(self.static.digest())
        for a in (self.embed, self.out, self.bias, self.repeat, self.exp_table, np.array([self.shift])):
            h.update(np.ascontiguousarray(a).astype("<i8").tobytes())
        return h.digest()
