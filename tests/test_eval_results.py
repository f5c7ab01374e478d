"""The committed results and reference curves are well-formed and agree with each other."""

from pathlib import Path

import pytest

from lic.eval.baselines import BASELINES
from lic.eval.harness import MetricSet, Meter, measure
from lic.eval.results import ROWS_FILE, make_curve, read_curve, read_rows
from helpers import DATA, REPO, needs_data

KODAK_RESULTS = REPO / "eval" / "results" / "kodak"
REFERENCE = REPO / "eval" / "reference"


def test_committed_curves_are_the_means_of_the_committed_rows():
    rows = read_rows(KODAK_RESULTS / ROWS_FILE)
    curves = sorted(KODAK_RESULTS.glob("*.json"))
    assert {p.stem for p in curves} >= set(BASELINES)
    for path in curves:
        curve = read_curve(path)
        mine = [r for r in rows if r["codec"] == curve.name]
        assert len(mine) == 24 * len(curve.results["quality"]), path.name
        recomputed = make_curve(curve.name, curve.description, "kodak", tuple(curve.results["quality"]), mine)
        assert recomputed["results"] == curve.results, path.name


def test_reference_curves_cite_their_source():
    paths = sorted(REFERENCE.glob("*.json"))
    for path in paths:
        curve = read_curve(path)
        assert curve.dataset == "kodak" and curve.reference["citation"] and curve.reference["source"]
        rates, psnr = curve.points("psnr-rgb")
        assert len(rates) >= 4 and all(b > a for a, b in zip(psnr, psnr[1:]))


@needs_data
def test_a_committed_row_reproduces():
    committed = next(r for r in read_rows(KODAK_RESULTS / ROWS_FILE)
                     if (r["codec"], r["quality"], r["image"]) == ("jpeg-420", 50, "kodim01.png"))
    row = measure(BASELINES["jpeg-420"], 50, Path(DATA / "kodak" / "kodim01.png"), Meter(MetricSet()))
    assert row["bpp"] == pytest.approx(committed["bpp"], rel=0.02)  # a newer libjpeg-turbo may differ slightly
    assert row["psnr-rgb"] == pytest.approx(committed["psnr-rgb"], abs=0.1)
