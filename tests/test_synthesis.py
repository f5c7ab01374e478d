"""The rewritten synthesis (`lic.codecs.synthesis`): the same transform as the trained g_s,
exact in float64 up to summation order, and a float32 fast path that stays within a grey level."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from helpers import SAMPLES
from lic import models
from lic.codecs.base import to_pixels
from lic.codecs.hyperprior_net import MeanScaleHyperprior
from lic.codecs.synthesis import Synthesis


@pytest.mark.parametrize("exact, tolerance", [(True, 1e-12), (False, 1e-4)])
def test_prepared_synthesis_computes_the_trained_g_s(exact, tolerance):
    torch.manual_seed(0)
    g_s = MeanScaleHyperprior(N=16, M=24).g_s.double().eval()
    y_hat = torch.randn(2, 24, 40, 60, dtype=torch.float64) * 3  # two images, several column blocks
    with torch.no_grad():
        expected = g_s(y_hat)
    got = Synthesis(g_s, exact)(y_hat)
    assert got.dtype == (torch.float64 if exact else torch.float32)
    assert (got.double() - expected).abs().max() < tolerance


def test_exact_synthesis_moves_no_pixel_of_a_shipped_model():
    codec = models.load_codec(models.find("hyperprior", 3).path, "cpu", 3)
    image = np.asarray(Image.open(SAMPLES / "landscape.png").convert("RGB"))[:128, :192]
    data = lic.compress(image, quality=3)
    header, streams = lic.bitstream.unpack(data)
    symbols = codec.decode_symbols(lic.codecs.base.Encoded(streams, header.digest), 128, 192)
    y_hat = symbols["y"] + symbols["means"]
    with torch.no_grad():
        trained = codec.g_s(y_hat)
    rewritten = Synthesis(codec.g_s, exact=True)(y_hat)
    assert not torch.equal(trained, rewritten)  # the sums are ordered differently ...
    assert torch.equal(to_pixels(trained), to_pixels(rewritten))  # ... and no pixel moves


def test_fast_decode_is_within_one_grey_level_of_the_exact_decode():
    image = np.asarray(Image.open(SAMPLES / "landscape.png").convert("RGB"))[:256, :320]
    data = lic.compress(image, quality=3)
    exact = np.asarray(lic.decompress(data)).astype(int)
    fast = np.asarray(lic.decompress(data, fast=True)).astype(int)
    assert np.abs(exact - fast).max() <= 1
    assert np.mean(exact != fast) < 1e-3
