"""The shipped models: present, loadable, and a real quality ladder."""

import pytest

import lic
from lic import models
from lic.eval.metrics import psnr
from lic.imageio import load_image
from helpers import DATA, SAMPLES, needs_data

LADDER = [1, 2, 3, 4, 5, 6, 7, 8]


def _hyperprior_qualities():
    return [m.quality for m in models.available() if m.name == "hyperprior"]


def test_the_hyperprior_ladder_ships():
    assert _hyperprior_qualities() == LADDER
    for m in models.available():
        assert m.path.stat().st_size < 8e6, f"{m.path.name} is too big to ship"
        assert m.path.with_name(f"{m.name}.md").is_file(), f"{m.name} has no model card"


def _ladder(path, model="hyperprior"):
    source = load_image(path)
    points = []
    for q in LADDER:
        data = lic.compress(path, quality=q, model=model)
        decoded = load_image(lic.decompress(data))
        points.append((8 * len(data) / (source.width * source.height), psnr(source.rgb, decoded.rgb)))
    return points


def _assert_monotonic(points):
    bpp, quality = zip(*points)
    assert all(a < b for a, b in zip(bpp, bpp[1:])), bpp
    assert all(a < b for a, b in zip(quality, quality[1:])), quality


@pytest.mark.slow
def test_sample_image_ladder_is_monotonic():
    _assert_monotonic(_ladder(SAMPLES / "landscape.png"))


@needs_data
def test_kodak_ladder_is_monotonic():
    points = _ladder(DATA / "kodak" / "kodim23.png")
    _assert_monotonic(points)
    assert points[-1][1] > 28, "q8 should be well above 28 dB on kodim23"


def test_the_vq_model_ships_eight_levels():
    (vq,) = [m for m in models.available() if m.name == "vq"]
    assert vq.qualities == tuple(LADDER)


@needs_data
def test_vq_levels_give_increasing_extreme_rates():
    bpp = [b for b, _ in _ladder(DATA / "kodak" / "kodim01.png", "vq")]
    assert all(a < b for a, b in zip(bpp, bpp[1:])), bpp
    assert 0.01 <= bpp[0] and bpp[-1] <= 0.05, bpp


def test_shipped_hyperprior_files_are_mixed_precision_within_5_6_mb():
    from lic.export.mixed_precision import MENU

    for m in models.available():
        if m.name == "hyperprior":
            widths = m.config["weight_bits"]
            assert set(widths.values()) <= set(MENU) and len(set(widths.values())) > 1, widths
            assert m.path.stat().st_size <= 5.6e6, m.path.name


@pytest.mark.slow
def test_shipped_hyperprior_decodes_the_same_across_threads_and_processes(tmp_path):
    from helpers import assert_same_pixels_everywhere, photo_like

    path = models.find("hyperprior", 3).path
    assert_same_pixels_everywhere(lic.compress(photo_like(64, 96, 7), quality=3), path, tmp_path)
