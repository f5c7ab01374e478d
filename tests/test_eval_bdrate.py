"""Bjøntegaard deltas on curves whose answer is known."""

import pytest

from lic.eval.bdrate import bd_quality, bd_rate, bd_table, format_table
from lic.eval.results import Curve

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [27.0, 29.5, 32.0, 34.8, 37.9]


def curve(name, rates, psnr=PSNR, lpips=None):
    results = {"bpp": rates, "psnr-rgb": psnr, "ms-ssim-rgb": [0.9, 0.94, 0.96, 0.98, 0.99]}
    if lpips is not None:
        results["lpips"] = lpips
    return Curve(name, "", "kodak", results)


def test_a_curve_against_itself_is_zero():
    assert bd_rate((RATES, PSNR), (RATES, PSNR)) == pytest.approx(0, abs=1e-9)
    assert bd_quality((RATES, PSNR), (RATES, PSNR)) == pytest.approx(0, abs=1e-9)


def test_half_the_bits_is_minus_fifty_percent():
    assert bd_rate((RATES, PSNR), ([r / 2 for r in RATES], PSNR)) == pytest.approx(-50, abs=1e-6)


def test_one_db_better_everywhere():
    assert bd_quality((RATES, PSNR), (RATES, [p + 1 for p in PSNR])) == pytest.approx(1.0)


def test_undefined_cases_give_none():
    assert bd_rate((RATES, PSNR), ([5, 6], [50, 51])) is None  # no overlap
    assert bd_rate((RATES, PSNR), ([0.2], [30])) is None  # one point
    assert bd_rate((RATES, [27, 29, 28, 30, 31]), (RATES, PSNR)) is None  # not monotonic


def test_table_directions_and_lpips_sign():
    lpips = [0.5, 0.4, 0.3, 0.2, 0.1]
    anchor = curve("webp", RATES, lpips=lpips)
    better = curve("x", [r / 2 for r in RATES], lpips=lpips)
    rows = bd_table([anchor, better], "webp")
    assert [r.codec for r in rows] == ["x"]
    for metric in ("psnr-rgb", "ms-ssim-rgb", "lpips"):
        assert rows[0].rate[metric] == pytest.approx(-50, abs=1e-6)
    # LPIPS delta is test minus anchor at equal rate: lower (better) is negative.
    assert rows[0].delta["lpips"] < 0 and rows[0].delta["psnr-rgb"] > 0
    text = format_table(rows, "webp")
    assert "| x | -50.0% |" in text and "BD-rate LPIPS" in text


def test_metrics_nobody_has_are_left_out_of_the_table():
    text = format_table(bd_table([curve("webp", RATES), curve("x", RATES)], "webp"), "webp")
    assert "LPIPS" not in text and "BD-rate PSNR" in text
