"""Range coding of integer values with `CdfTables`, using constriction's queue coder.

Each value carries a table id (a channel for the factorized prior, a scale index for the
Gaussian conditional). Values are coded table by table, in increasing table id and, inside a
table, in the order given, so that every table's model is built once and its symbols are
coded in one vectorised call. The decoder knows the table ids before it decodes (they come
from already-decoded information), so it can follow the same order.

Values outside a table's range are coded as the overflow symbol and then, after all regular
symbols, with an Elias-gamma code on uniform models, as CompressAI's coder does with its
bypass mode.
"""

from __future__ import annotations

import constriction
import numpy as np

from lic.entropy.tables import CdfTables
from lic.errors import FormatError

_model = constriction.stream.model
MAX_GAMMA_BITS = 23  # constriction's Uniform model takes sizes below 2**24.


def _table_ids(table_ids: np.ndarray) -> np.ndarray:
    """Flat table ids in their own integer dtype: a uint8 index map is not widened to int64
    (for a 24-megapixel image that would be 0.15 GB per copy)."""
    table_ids = np.asarray(table_ids).ravel()
    if not np.issubdtype(table_ids.dtype, np.integer):
        raise ValueError(f"table ids must be integers, not {table_ids.dtype}")
    return table_ids


def _groups(table_ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(table id, positions) for each table used, ids increasing, positions in order."""
    order = np.argsort(table_ids, kind="stable")
    ids = table_ids[order]
    bounds = [0, *(np.flatnonzero(ids[1:] != ids[:-1]) + 1).tolist(), order.size]
    return [(int(ids[s]), order[s:e]) for s, e in zip(bounds[:-1], bounds[1:]) if e > s]


def _categorical(tables: CdfTables, table: int) -> constriction.stream.model.Categorical:
    return _model.Categorical(tables.pmf(table), perfect=False)


def encode_symbols(
    encoder: constriction.stream.queue.RangeEncoder,
    values: np.ndarray,
    table_ids: np.ndarray,
    tables: CdfTables,
) -> None:
    """Appends `values` (integers) to `encoder`, value i coded with table `table_ids[i]`."""
    values = np.asarray(values, dtype=np.int64).ravel()
    table_ids = _table_ids(table_ids)
    if values.shape != table_ids.shape:
        raise ValueError("values and table_ids differ in size")
    escapes: list[np.ndarray] = []
    for table, pos in _groups(table_ids):
        n = tables.num_values(table)
        index = values[pos] - int(tables.offset[table])
        out = (index < 0) | (index >= n)
        index[out] = n
        encoder.encode(index.astype(np.int32), _categorical(tables, table))
        escaped = values[pos][out] - int(tables.offset[table])
        escapes.append(np.where(escaped < 0, -2 * escaped - 1, 2 * (escaped - n)))
    _encode_gamma(encoder, np.concatenate(escapes) if escapes else np.zeros(0, np.int64))


def stream_decoder(stream: bytes, what: str) -> constriction.stream.queue.RangeDecoder:
    """A range decoder over `stream`, which must be whole little-endian 32-bit words."""
    if len(stream) % 4:
        raise FormatError(f"the {what} is not a whole number of 32-bit words")
    return constriction.stream.queue.RangeDecoder(np.frombuffer(stream, dtype="<u4").astype(np.uint32))


def check_consumed(decoder: constriction.stream.queue.RangeDecoder, stream: bytes, symbols: int, what: str) -> None:
    """A `FormatError` unless decoding `symbols` symbols used `stream` exactly to its end.

    The range decoder reads zeros past the end of its data and ignores words after the last
    symbol, so an emptied stream or one with words appended would otherwise decode, silently,
    to other values. constriction's encoder writes at least one word once it holds a symbol
    and no word after the last one, so after the last symbol a valid stream is always
    `maybe_exhausted()`; words left over are not (they may go unseen only when they are few
    and happen to look like the end of the data)."""
    if symbols and not stream:
        raise FormatError(f"the {what} is empty")
    if not decoder.maybe_exhausted():
        raise FormatError(f"the {what} is corrupted (data after its last symbol)")


def checked_decode(decoder: constriction.stream.queue.RangeDecoder, *args) -> np.ndarray:
    """`decoder.decode(*args)`, with constriction's verdict on impossible data as a `FormatError`.

    constriction raises AssertionError ("compressed data that is invalid for the employed
    entropy model") when no symbol sequence could have produced the data, which is what a
    crafted or damaged stream with a valid CRC looks like. Only that is translated: any
    other failure is a bug or a resource error and must not be reported as corruption.
    """
    try:
        return decoder.decode(*args)
    except AssertionError as e:
        raise FormatError(f"the entropy-coded data is corrupted ({e})") from None


def decode_symbols(
    decoder: constriction.stream.queue.RangeDecoder,
    table_ids: np.ndarray,
    tables: CdfTables,
) -> np.ndarray:
    """Inverse of `encode_symbols`: returns the values, shaped like `table_ids`."""
    shape = np.shape(table_ids)
    table_ids = _table_ids(table_ids)
    values = np.empty(table_ids.size, dtype=np.int64)
    overflow_pos: list[np.ndarray] = []
    overflow_n: list[np.ndarray] = []
    for table, pos in _groups(table_ids):
        n = tables.num_values(table)
        index = checked_decode(decoder, _categorical(tables, table), pos.size).astype(np.int64)
        values[pos] = index + int(tables.offset[table])
        out = index == n
        overflow_pos.append(pos[out])
        overflow_n.append(np.full(int(out.sum()), n, dtype=np.int64))
    if overflow_pos:
        pos = np.concatenate(overflow_pos)
        n = np.concatenate(overflow_n)
        u = _decode_gamma(decoder, pos.size)
        escaped = np.where(u % 2 == 1, -(u + 1) // 2, u // 2 + n)
        values[pos] += escaped - n
    return values.reshape(shape)


def _encode_gamma(encoder: constriction.stream.queue.RangeEncoder, u: np.ndarray) -> None:
    """Elias-gamma code of non-negative integers: bit count, then the bits below the top."""
    if u.size == 0:
        return
    m = u + 1
    k = np.floor(np.log2(m)).astype(np.int64)
    k += (m >> k) > 1  # guard against log2 rounding for huge m
    k -= (m >> k) == 0
    if k.max() > MAX_GAMMA_BITS:
        raise ValueError("a latent value is too large to code (corrupt model or input)")
    encoder.encode(k.astype(np.int32), _model.Uniform(MAX_GAMMA_BITS + 1))
    wide = k > 0
    if wide.any():
        rest = (m - (1 << k))[wide]
        encoder.encode(rest.astype(np.int32), _model.Uniform(), (1 << k[wide]).astype(np.int32))


def _decode_gamma(decoder: constriction.stream.queue.RangeDecoder, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    k = checked_decode(decoder, _model.Uniform(MAX_GAMMA_BITS + 1), count).astype(np.int64)
    m = np.int64(1) << k
    wide = k > 0
    if wide.any():
        m[wide] += checked_decode(decoder, _model.Uniform(), (1 << k[wide]).astype(np.int32))
    return m - 1


def encode_stream(values: np.ndarray, table_ids: np.ndarray, tables: CdfTables) -> bytes:
    """One whole stream of `values` (integers), each coded with table `table_ids[i]`."""
    encoder = constriction.stream.queue.RangeEncoder()
    encode_symbols(encoder, values, table_ids, tables)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_stream(stream: bytes, table_ids: np.ndarray, tables: CdfTables, what: str) -> np.ndarray:
    """The values of one stream (`encode_stream`), which must hold exactly them (`check_consumed`)."""
    decoder = stream_decoder(stream, what)
    values = decode_symbols(decoder, table_ids, tables)
    check_consumed(decoder, stream, values.size, what)
    return values
