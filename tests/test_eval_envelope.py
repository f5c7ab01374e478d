"""The best-baseline envelope: interpolation, direction of each metric, no extrapolation."""

import json

import pytest

from helpers import run_lic
from lic.eval.envelope import compare, envelope_at
from lic.eval.results import Curve


def curve(name: str, bpp: list[float], **metrics: list[float]) -> Curve:
    return Curve(name, "", "kodak", {"quality": list(range(1, len(bpp) + 1)), "bpp": bpp, **metrics})


LOW = curve("low", [0.01, 0.03], dss=[0.2, 0.4], gmsd=[0.30, 0.20])
HIGH = curve("high", [0.02, 0.06], dss=[0.1, 0.5], gmsd=[0.27, 0.01])


def test_interpolates_and_takes_the_best_curve():
    assert envelope_at([LOW, HIGH], "dss", 0.02) == (pytest.approx(0.3), "low")  # 0.3 beats 0.1
    assert envelope_at([LOW, HIGH], "dss", 0.05) == (pytest.approx(0.4), "high")


def test_lower_is_better_metrics_take_the_minimum():
    assert envelope_at([LOW, HIGH], "gmsd", 0.02) == (pytest.approx(0.25), "low")  # 0.25 beats 0.27
    assert envelope_at([LOW, HIGH], "gmsd", 0.05) == (pytest.approx(0.075), "high")


def test_no_extrapolation():
    assert envelope_at([LOW, HIGH], "dss", 0.005) is None and envelope_at([LOW, HIGH], "dss", 0.07) is None


def test_compare_rows():
    test = curve("vq", [0.02, 0.08], dss=[0.5, 0.6])
    rows = compare(test, [LOW, HIGH], ["dss"])
    assert rows[0].values["dss"] == 0.5 and rows[0].envelope["dss"][0] == pytest.approx(0.3)
    assert rows[1].envelope["dss"] is None


def test_cli_writes_the_table(tmp_path):
    for c in (LOW, HIGH, curve("vq", [0.02], dss=[0.5])):
        (tmp_path / f"{c.name}.json").write_text(json.dumps({"name": c.name, "results": c.results}))
    out = tmp_path / "table.md"
    args = ["compare", str(tmp_path / "vq.json"), str(tmp_path), "--metric", "dss", "-o", str(out)]
    r = run_lic(*args)
    assert r.exit_code == 0, r.output
    assert "| 1 | 0.0200 | 0.500 | 0.300 (low) | +0.200 |" in out.read_text()
    r = run_lic(*args)
    assert r.exit_code != 0 and "--force" in r.output
    r = run_lic("compare", str(tmp_path / "vq.json"), str(tmp_path), "--metric", "nope")
    assert r.exit_code != 0 and "unknown metric" in r.output
