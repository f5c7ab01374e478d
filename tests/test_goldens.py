"""The bitstream is pinned: committed .lic files decode to their committed pixel hashes.

Every other test encodes and decodes with the same code, so a change to the coder, the
tables or the container would pass them all while breaking every existing file. A
deliberate change regenerates the goldens (tests/fixtures/make_goldens.py) in its commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import lic

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_goldens import GOLDENS, HASHES, golden_path, pixel_hash  # noqa: E402

EXPECTED = json.loads(HASHES.read_text())
REGENERATE = "a deliberate format or model change must rerun tests/fixtures/make_goldens.py and commit its outputs"


@pytest.mark.parametrize("model, quality, step", GOLDENS)
def test_golden_files_decode_to_their_pixels(model, quality, step):
    path = golden_path(model, quality, step)
    expected = EXPECTED[path.name]
    decoded = lic.decompress(path.read_bytes())
    assert (decoded.mode, list(decoded.size)) == (expected["mode"], expected["size"]), REGENERATE
    assert pixel_hash(decoded) == expected["sha256"], REGENERATE


def test_goldens_are_small_and_cover_every_version():
    versions = set()
    for model, quality, step in GOLDENS:
        data = golden_path(model, quality, step).read_bytes()
        assert len(data) < 1000 and lic.read_header(data).codec_name == model
        assert lic.read_header(data).step == step
        versions.add(data[4])
    assert versions == set(lic.bitstream.SUPPORTED)
