"""`lic bench`: speed rows for lic and the classic codecs, the CompressAI comparison, the
fast path's deviation, and one-line errors for bad options."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from helpers import photo_like, run_lic


@pytest.fixture()
def small_image(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(photo_like(64, 128)).save(path)
    return path


def _rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_bench_times_lic_exact_and_fast_and_the_classic_codecs(small_image):
    r = run_lic("bench", str(small_image), "-q", "2", "--threads", "1", "--rounds", "1",
                            "--baselines-at", "2", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["codec"].split(" q")[0]: row for row in _rows(r.output)}
    lic = rows.pop("lic hyperprior")
    assert lic["threads"] == 1 and lic["bpp"] > 0
    assert min(lic["encode_mps"], lic["decode_mps"], lic["fast_decode_mps"]) > 0
    assert "webp" in rows  # Pillow always writes WebP; AVIF and JXL where installed
    assert all(row["fast_decode_mps"] is None and row["decode_mps"] > 0 for row in rows.values())


def test_bench_compares_with_compressai_side_by_side(small_image):
    r = run_lic("bench", str(small_image), "-q", "1", "--threads", "1", "--rounds", "1",
                            "--against-compressai", "--json")
    assert r.exit_code == 0, r.output
    (row,) = _rows(r.output)
    assert row["quality"] == 1 and row["threads"] == 1
    assert row["decode"] == pytest.approx(row["seconds"]["decode"] / row["seconds"]["compressai decompress"])


def test_bench_deviation_reports_how_far_fast_decodes_are(small_image):
    r = run_lic("bench", str(small_image), "-q", "3", "--deviation", "--json")
    assert r.exit_code == 0, r.output
    (row,) = _rows(r.output)
    assert row["max_difference"] <= 1 and 0 <= row["differing_fraction"] < 1e-3
    assert abs(row["psnr_exact"] - row["psnr_fast"]) < 0.01


@pytest.mark.parametrize("option", [["-q", "0"], ["-q", "9"], ["-q", "a,b"], ["--threads", "0"]])
def test_bench_refuses_bad_lists_in_one_line(small_image, option):
    r = run_lic("bench", str(small_image), *option)
    assert r.exit_code == 1
    assert r.output.startswith("lic: error:") and r.output.count("\n") == 1
