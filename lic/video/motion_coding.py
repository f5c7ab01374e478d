"""Entropy coding of a motion field with the integer CDF tables of the residual model.

Each vector is predicted from already-decoded neighbours, and only the difference is coded:

    first block:             (0, 0)
    rest of the first row:   the left vector
    first column below it:   the top vector
    elsewhere:               component-wise median of left, top and top-right
                             (top-left where top-right is past the right edge; H.264's rule)

Differences are coded with `lic.entropy.encode_symbols`: one Gaussian table for all dy and
one for all dx. The encoder tries every table (the first 256) and keeps the one with the fewest
bits, so a static scene costs almost nothing and a fast pan still fits. Stream layout:

    offset size  field
    0      1     table index for the dy differences
    1      1     table index for the dx differences
    2      4k    constriction range-coder words, uint32 little-endian: the differences in
                 `encode_symbols` order, then a 16-bit end mark

The field's size is not stored: the caller knows the frame size and block size. Decoding
raises `FormatError` for a stream that is too short, names a table that does not exist,
decodes to vectors beyond `MAX_VECTOR`, misses the end mark (damaged or truncated words send
the range decoder off the encoder's path; it then reads the mark with probability 2**-16), or
is not byte for byte what its vectors encode to (extra or changed trailing words). Damage
confined to the raw bits of escaped values (differences beyond the chosen table's range) can
go unnoticed: that is what the container's CRC is for.
"""

from __future__ import annotations

import math

import constriction
import numpy as np

from lic.entropy.coder import MAX_GAMMA_BITS, checked_decode, decode_symbols, encode_symbols
from lic.entropy.tables import CdfTables
from lic.errors import FormatError

#: Largest |component| of a vector, in quarter pels (8192 pixels: past any frame edge).
MAX_VECTOR = 1 << 15
_MAX_TABLES = 256  # a table index is one byte
_END_MARK = 0xA5C3
_END_MODEL = constriction.stream.model.Uniform(1 << 16)


def median_predictor(mv: np.ndarray) -> np.ndarray:
    """The prediction of every vector of a whole field (int64), by the rule in the module doc."""
    mv = np.asarray(mv, dtype=np.int64)
    pred = np.zeros_like(mv)
    if mv.size == 0:
        return pred
    pred[0, 1:] = mv[0, :-1]
    if mv.shape[0] > 1:
        pred[1:, 0] = mv[:-1, 0]
        top_right = np.concatenate([mv[:-1, 2:], mv[:-1, -2:-1]], axis=1)
        pred[1:, 1:] = _median3(mv[1:, :-1], mv[:-1, 1:], top_right)
    return pred


def _median3(a, b, c):
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def encode_motion(mv: np.ndarray, tables: CdfTables) -> bytes:
    """The stream of a motion field (blocks_h, blocks_w, 2) of integers."""
    mv = np.asarray(mv)
    if mv.ndim != 3 or mv.shape[2] != 2 or not np.issubdtype(mv.dtype, np.integer):
        raise ValueError(f"a motion field is an integer array (blocks_h, blocks_w, 2), not {mv.dtype}{mv.shape}")
    if mv.size and np.abs(mv.astype(np.int64)).max() > MAX_VECTOR:
        raise ValueError(f"motion vector components must be within +-{MAX_VECTOR} quarter pels")
    diff = mv.astype(np.int64) - median_predictor(mv)
    return _encode_differences(diff, np.array([best_table(diff[..., c], tables) for c in range(2)]), tables)


def _encode_differences(diff: np.ndarray, ids: np.ndarray, tables: CdfTables) -> bytes:
    encoder = constriction.stream.queue.RangeEncoder()
    encode_symbols(encoder, diff, np.broadcast_to(ids, diff.shape), tables)
    encoder.encode(np.array([_END_MARK], np.int32), _END_MODEL)
    return bytes(ids.astype(np.uint8)) + encoder.get_compressed().astype("<u4").tobytes()


def decode_motion(data: bytes, blocks_h: int, blocks_w: int, tables: CdfTables) -> np.ndarray:
    """The motion field (blocks_h, blocks_w, 2) int32 that `encode_motion` wrote to `data`."""
    if len(data) < 2 or (len(data) - 2) % 4:
        raise FormatError("motion stream: two table bytes and whole 32-bit words expected")
    ids = np.frombuffer(data[:2], dtype=np.uint8).astype(np.int64)
    if ids.max() >= min(len(tables), _MAX_TABLES):
        raise FormatError(f"motion stream: table index {int(ids.max())} does not exist")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data[2:], dtype="<u4").astype(np.uint32))
    diff = decode_symbols(decoder, np.broadcast_to(ids, (blocks_h, blocks_w, 2)), tables)
    if checked_decode(decoder, _END_MODEL, 1)[0] != _END_MARK or _encode_differences(diff, ids, tables) != data:
        raise FormatError("motion stream: truncated or corrupted")
    return _undo_prediction(diff)


def _undo_prediction(diff: np.ndarray) -> np.ndarray:
    """Vectors from their differences, in raster order (each prediction needs decoded neighbours)."""
    rows, cols = diff.shape[:2]
    d = diff.tolist()
    out = [[[0, 0] for _ in range(cols)] for _ in range(rows)]
    for y in range(rows):
        for x in range(cols):
            for c in range(2):
                if y == 0:
                    p = out[0][x - 1][c] if x else 0
                elif x == 0:
                    p = out[y - 1][0][c]
                else:
                    a, b = out[y][x - 1][c], out[y - 1][x][c]
                    e = out[y - 1][x + 1][c] if x + 1 < cols else out[y - 1][x - 1][c]
                    p = max(min(a, b), min(max(a, b), e))
                v = p + d[y][x][c]
                if abs(v) > MAX_VECTOR:
                    raise FormatError("motion stream: a vector lies beyond the allowed range")
                out[y][x][c] = v
    return np.array(out, dtype=np.int32).reshape(rows, cols, 2)


def best_table(values: np.ndarray, tables: CdfTables) -> int:
    """The table that codes `values` in the fewest bits (ideal code lengths; overflows as
    the coder escapes them: the overflow symbol plus an Elias-gamma code)."""
    values = np.asarray(values, dtype=np.int64).ravel()
    best, best_bits = 0, math.inf
    for t in range(min(len(tables), _MAX_TABLES)):
        n, offset = tables.num_values(t), int(tables.offset[t])
        index = values - offset
        out = (index < 0) | (index >= n)
        index[out] = n
        bits = -np.log2(tables.pmf(t)[index] / (1 << tables.precision)).sum()
        u = np.where(values[out] < offset, 2 * (offset - values[out]) - 1, 2 * (values[out] - offset - n))
        # the coder's escape: a uniform length symbol, then the bits below the top one
        bits += (math.log2(MAX_GAMMA_BITS + 1) + np.floor(np.log2(u + 1))).sum()
        if bits < best_bits:
            best, best_bits = t, bits
    return best
