"""Tiled networks give the whole-image results: memory is bounded without changing pixels."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from helpers import SAMPLES
from lic import models
from lic.codecs.base import as_pixels, pad_to_multiple, to_input
from lic.codecs.tiling import run_tiled

UNTILED = 10**6


def _image(height: int = 200, width: int = 330) -> np.ndarray:
    return np.array(Image.open(SAMPLES / "landscape.png").convert("RGB"))[:height, :width]


def _codec(model: str, quality: int, tile: int):
    codec = copy.copy(models.load_codec(models.find(model, quality).path, "cpu", quality))
    codec.tile = tile
    if model == "hyperprior":  # its synthesis has a tile size of its own
        codec.synthesis_tile = tile
    return codec


def test_run_tiled_covers_every_cell_once():
    x = torch.arange(5 * 7, dtype=torch.float64).view(1, 1, 5, 7)
    out = run_tiled(lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2) * 2, x, 1, 2, tile=2, halo=1)
    assert torch.equal(out, (x * 2).repeat_interleave(2, -1).repeat_interleave(2, -2))


@pytest.mark.parametrize("model, quality, tile", [("hyperprior", 3, 3), ("vq", 4, 5)])
def test_tiled_decoding_gives_the_untiled_pixels(model, quality, tile):
    data = lic.compress(_image(), quality=quality, model=model)
    header, streams = lic.bitstream.unpack(data)
    decoded = {}
    for t in (tile, UNTILED):
        decoded[t] = lic.api.decode_with(_codec(model, quality, t), header, streams)
    assert np.array_equal(np.asarray(decoded[tile]), np.asarray(decoded[UNTILED]))


@pytest.mark.parametrize("model, quality, tile", [("hyperprior", 3, 3), ("vq", 4, 5)])
def test_tiled_analysis_matches_the_untiled_one(model, quality, tile):
    x, _, _ = pad_to_multiple(to_input(as_pixels(_image())), 64)
    tiled, untiled = (_codec(model, quality, t).analyse(x) for t in (tile, UNTILED))
    if model == "vq":  # indices: a float32 near-tie may pick the neighbouring code
        assert (tiled != untiled).mean() < 0.01
    else:  # symbols: a latent within float32 noise of a rounding boundary may move by one
        assert torch.equal(tiled["z"], untiled["z"])
        changed = tiled["y"] != untiled["y"]
        assert changed.float().mean() < 1e-3 and (tiled["y"] - untiled["y"]).abs().max() <= 1


def test_the_hyper_decoder_runs_in_tiles_and_gives_the_whole_image_integers():
    from lic.codecs.latent.hyperprior import HYPER_HALO

    codec = _codec("hyperprior", 3, 32)
    z = torch.randint(-4, 5, (1, codec.latent.z.channels, 9, 11), generator=torch.Generator().manual_seed(0))
    sides: list[int] = []
    tiled, whole = copy.copy(codec.latent), copy.copy(codec.latent)
    tiled.hyper_tile, whole.hyper_tile = 3, UNTILED
    tiled.h_s = lambda t: sides.extend(t.shape[-2:]) or codec.latent.h_s(t)
    (index, means, digest), (index0, means0, digest0) = (c.entropy_parameters(z.double()) for c in (tiled, whole))
    assert torch.equal(index, index0) and torch.equal(means, means0) and digest == digest0
    assert len(sides) == 2 * 3 * 4 and max(sides) <= 3 + 2 * HYPER_HALO  # never the whole z


@pytest.mark.parametrize("model, quality", [("hyperprior", 3), ("vq", 4)])
def test_encoders_read_8_bit_pixels_as_the_float_image(model, quality):
    """The API hands encoders uint8 pixels (a quarter of the memory); the file is the same."""
    pixels = torch.from_numpy(_image(128, 192)).permute(2, 0, 1)[None]
    codec = _codec(model, quality, 3)
    assert codec.encode(pixels) == codec.encode(to_input(as_pixels(_image(128, 192))))
