"""Every codec the harness runs round-trips a small image through its real encoder."""

import struct

import numpy as np
import pytest

from lic import models
from lic.codecs.hyperprior_net import MeanScaleHyperprior
from lic.export.hyperprior import export
from lic.errors import LicError
from lic.eval.baselines import BASELINES
from lic.eval.codecs import resolve
from lic.eval.metrics import psnr
from helpers import photo_like

# Odd sides on purpose: chroma subsampling, HEVC's 8-pixel CUs and downscaling must all cope.
IMAGE = photo_like(45, 61)


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_round_trip(name):
    codec = BASELINES[name]
    reason = codec.unavailable()
    if reason:
        pytest.skip(f"{name} is unavailable on this machine: {reason}")
    low, high = codec.qualities[0], codec.qualities[-1]
    small, large = codec.encode(IMAGE, low), codec.encode(IMAGE, high)
    assert 0 < len(small) < len(large)  # the sweep runs from low to high rate
    decoded = codec.decode(large)
    assert decoded.shape == IMAGE.shape and decoded.dtype == np.uint8
    assert psnr(IMAGE, decoded) > (20 if name.endswith(("down2", "down4")) else 30)


def test_downscaled_file_carries_the_full_size():
    data = BASELINES["webp-down4"].encode(IMAGE, 50)
    assert struct.unpack(">HH", data[:4]) == (61, 45)
    assert BASELINES["webp-down4"].decode(data).shape == IMAGE.shape


def test_hevc_counts_the_raw_bitstream():
    codec = BASELINES["hevc"]
    if codec.unavailable():
        pytest.skip(f"hevc is unavailable on this machine: {codec.unavailable()}")
    data = codec.encode(IMAGE, 32)
    assert data[:4] == b"\x00\x00\x00\x01"  # Annex-B start code of the VPS: no container


def test_unknown_and_unavailable_codecs_are_user_errors():
    with pytest.raises(LicError, match="unknown codec 'bpg'.*webp"):
        resolve("bpg")
    with pytest.raises(LicError, match="unknown model 'nope'"):
        resolve("lic-nope")


def test_lic_codec_from_a_model_file(tiny_model):
    codec = resolve(f"lic-{tiny_model}")
    assert codec.name == "lic-tiny" and codec.qualities == (2,)
    codec.prepare(2)
    data = codec.encode(IMAGE, 2)
    assert data[:4] == b"\x89LIC"
    assert codec.decode(data).shape == IMAGE.shape


@pytest.fixture()
def zoo(tmp_path, monkeypatch):
    """A zoo folder holding a two-quality model named 'hyperprior', as lic-hyperprior will ship."""
    import torch

    tensors = export(MeanScaleHyperprior(16, 16), torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    for quality in (1, 2):  # the same weights twice: only the quality (and so the hash) differs
        models.save_model_file(tmp_path / f"hyperprior-q{quality}.safetensors", tensors,
                               {"name": "hyperprior", "family": "hyperprior", "quality": quality, "N": 16, "M": 16})
    monkeypatch.setattr(models, "ZOO_DIR", tmp_path)
    models.available.cache_clear()
    yield tmp_path
    models.available.cache_clear()


def test_lic_codec_from_the_zoo_and_from_a_folder(zoo):
    for spec in ("hyperprior", str(zoo)):
        codec = resolve(f"lic-{spec}")
        assert codec.name == "lic-hyperprior" and codec.qualities == (1, 2)
        data = codec.encode(IMAGE, 2)
        assert codec.decode(data).shape == IMAGE.shape


def test_crop_figure_finds_the_downscaled_avif_nearest_in_size():
    from lic.eval.crops import avif_near

    rgb = photo_like(128, 160)
    coded = avif_near(rgb, 600)
    assert coded.rgb.shape == rgb.shape and coded.bytes <= 660 and "AVIF 1/" in coded.label
    with pytest.raises(ValueError, match="as small as"):
        avif_near(rgb, 10)


def test_lic_codec_at_an_effort_encodes_refined_files():
    codec = resolve("lic-hyperprior@effort1")
    assert codec.name == "lic-hyperprior@effort1" and codec.effort == 1 and "effort 1" in codec.description
    rgb = photo_like(64, 64, seed=9)
    data = codec.encode(rgb, 2)
    assert data != resolve("lic-hyperprior").encode(rgb, 2) and codec.decode(data).shape == rgb.shape


@pytest.mark.parametrize("name", ["lic-hyperprior@effort4", "lic-hyperprior@effortx"])
def test_an_effort_out_of_range_is_a_user_error(name):
    with pytest.raises(LicError, match="the effort is 0..3"):
        resolve(name)
