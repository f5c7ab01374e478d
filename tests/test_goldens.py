"""The bitstream is pinned in both directions: the golden sources encode (one thread) to the
committed .lic bytes, and the committed files decode to their committed pixel hashes.

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
from make_goldens import (  # noqa: E402
    FORM_MODEL, FORM_QUALITY, FORMS, GOLDENS, HASHES, clip_entry, clip_path, encode_clip, encode_image, form_path,
    golden_form, golden_image, golden_path, image_entry,
)

EXPECTED = json.loads(HASHES.read_text())
REGENERATE = "a deliberate format or model change must rerun tests/fixtures/make_goldens.py and commit its outputs"


@pytest.mark.parametrize("model, quality, step", GOLDENS)
def test_golden_files_decode_to_their_pixels(model, quality, step):
    path = golden_path(model, quality, step)
    assert image_entry(path.read_bytes()) == EXPECTED[path.name], REGENERATE


@pytest.mark.parametrize("model, quality, step", GOLDENS)
def test_golden_sources_encode_to_the_committed_bytes(model, quality, step):
    assert encode_image(golden_image(), model, quality, step) == golden_path(model, quality, step).read_bytes(), REGENERATE


@pytest.mark.parametrize("form", FORMS)
def test_rgba_grey_and_16_bit_goldens_pin_both_directions(form):
    path = form_path(form)
    assert image_entry(path.read_bytes()) == EXPECTED[path.name], REGENERATE
    assert encode_image(golden_form(form), FORM_MODEL, FORM_QUALITY) == path.read_bytes(), REGENERATE


def test_golden_forms_keep_their_form():
    modes = {form: EXPECTED[form_path(form).name]["mode"] for form in FORMS}
    assert modes == {"rgba": "RGBA", "grey": "L", "16bit": "L"}
    assert lic.read_header(form_path("16bit").read_bytes()).flags & lic.bitstream.FLAG_16BIT


def test_the_clip_golden_pins_every_frame_both_ways(tmp_path):
    data = clip_path().read_bytes()
    expected = EXPECTED[clip_path().name]
    assert clip_entry(data) == expected, REGENERATE
    assert len(set(expected["frames"])) == 3  # an I-frame and two P-frames that each move the picture
    assert encode_clip(tmp_path / "clip.lic") == data, REGENERATE


def test_goldens_are_small_and_cover_every_version():
    versions = set()
    for model, quality, step in GOLDENS:
        data = golden_path(model, quality, step).read_bytes()
        assert len(data) < 1000 and lic.read_header(data).codec_name == model
        assert lic.read_header(data).step == step
        versions.add(data[4])
    assert versions == set(lic.bitstream.SUPPORTED)
