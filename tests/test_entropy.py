"""The integer CDF tables and the constriction coder built on them."""

import math

import constriction
import numpy as np
import pytest
import torch
from compressai.entropy_models import GaussianConditional

from lic.codecs.latent.gaussian import scale_table
from lic.entropy import CdfTables, decode_symbols, encode_symbols


@pytest.fixture(scope="module")
def gaussian_tables() -> CdfTables:
    gc = GaussianConditional(None)
    gc.update_scale_table(scale_table().float())
    return CdfTables.from_compressai(gc)


def _roundtrip(values, ids, tables):
    encoder = constriction.stream.queue.RangeEncoder()
    encode_symbols(encoder, values, ids, tables)
    words = encoder.get_compressed()
    decoded = decode_symbols(constriction.stream.queue.RangeDecoder(words), ids, tables)
    return decoded, 32 * words.size


def test_roundtrip_with_escapes_on_both_sides(gaussian_tables):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, len(gaussian_tables), size=20_000)
    values = np.round(rng.normal(size=ids.size) * scale_table().numpy()[ids]).astype(np.int64)
    # Far outside every table, both signs, including values needing the widest escape code.
    values[:6] = [40, -40, 5000, -5000, 2**22, -(2**22)]
    ids[:6] = 0
    decoded, _ = _roundtrip(values, ids, gaussian_tables)
    np.testing.assert_array_equal(decoded, values)


def test_rate_is_close_to_the_ideal_code_length(gaussian_tables):
    """The coder spends what the integer tables say a symbol costs, within 1 %."""
    rng = np.random.default_rng(2)
    ids = rng.integers(10, 40, size=50_000)
    values = np.round(rng.normal(size=ids.size) * scale_table().numpy()[ids]).astype(np.int64)
    ideal = 0.0
    for t in np.unique(ids):
        pmf = gaussian_tables.pmf(int(t))
        index = values[ids == t] - gaussian_tables.offset[t]
        ideal += -np.log2(pmf[index] / pmf.sum()).sum()
    decoded, bits = _roundtrip(values, ids, gaussian_tables)
    np.testing.assert_array_equal(decoded, values)
    assert ideal <= bits <= 1.01 * ideal + 64


def test_tables_survive_serialisation_and_hash_stably(gaussian_tables):
    restored = CdfTables.from_tensors(gaussian_tables.to_tensors("t"), "t")
    assert restored.digest() == gaussian_tables.digest()
    np.testing.assert_array_equal(restored.cdf, gaussian_tables.cdf)
    changed = CdfTables(restored.cdf.copy(), restored.length, restored.offset)
    changed.cdf[3] += 1
    assert changed.digest() != gaussian_tables.digest()


def test_malformed_tables_are_refused():
    with pytest.raises(ValueError):
        CdfTables(np.array([0, 5, 5, 65536], np.int32), np.array([4], np.int32), np.array([0], np.int32)).pmf(0)
    with pytest.raises(ValueError):
        CdfTables(np.array([0, 65536], np.int32), np.array([3], np.int32), np.array([0], np.int32))


def test_gaussian_table_spans_the_documented_scales():
    table = scale_table()
    assert len(table) == 64
    assert math.isclose(table[0].item(), 0.11) and math.isclose(table[-1].item(), 256.0)
    assert torch.all(table[1:] > table[:-1])
