"""The evaluation loop: real bytes, per-image rows, curves, and resuming an interrupted run."""

import json

import numpy as np
import pytest
from PIL import Image

from lic.errors import InputError
from lic.eval import harness
from lic.eval.codecs import resolve
from lic.eval.harness import MetricSet, evaluate
from lic.eval.results import ROWS_FILE, read_curve, read_rows
from helpers import photo_folder, photo_like


@pytest.fixture()
def dataset(tmp_path):
    """Two images: one large enough for MS-SSIM (sides above 160 px), one not."""
    folder = photo_folder(tmp_path / "tiny", ("a.png", 176, 168), ("b.png", 48, 64))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture()
def counted(monkeypatch):
    """Counts the rows the harness actually measures."""
    calls = []
    measure = harness.measure

    def counting(*args):
        calls.append(args[:3])
        return measure(*args)

    monkeypatch.setattr(harness, "measure", counting)
    return calls


def run(dataset, out, wanted=MetricSet(), **kwargs):
    return evaluate(dataset, [resolve("jpeg-420")], out, wanted, log=lambda line: None, **kwargs)


def test_rows_are_real_bytes_and_curves_average_them(dataset, tmp_path):
    out = tmp_path / "out"
    [curve_path] = run(dataset, out)
    rows = read_rows(out / ROWS_FILE)
    assert len(rows) == 2 * 8 and {r["image"] for r in rows} == {"a.png", "b.png"}
    row = next(r for r in rows if r["image"] == "a.png" and r["quality"] == 50)
    data = resolve("jpeg-420").encode(photo_like(176, 168, seed=1), 50)
    assert row["bytes"] == len(data) and row["bpp"] == pytest.approx(8 * len(data) / (176 * 168), abs=1e-6)
    assert 0 < row["ms-ssim-rgb"] < 1 and row["lpips"] is None
    assert np.isnan(next(r for r in rows if r["image"] == "b.png")["ms-ssim-rgb"])  # undefined, not missing

    curve = json.loads(curve_path.read_text())
    assert curve["name"] == "jpeg-420" and curve["dataset"] == "tiny" and curve["images"] == 2
    results = curve["results"]
    assert results["quality"] == list(resolve("jpeg-420").qualities)
    at_50, i = [r for r in rows if r["quality"] == 50], results["quality"].index(50)
    assert results["bpp"][i] == pytest.approx(np.mean([r["bpp"] for r in at_50]), abs=1e-6)
    assert results["psnr-rgb"][i] == pytest.approx(np.mean([r["psnr-rgb"] for r in at_50]), abs=1e-4)
    assert results["ms-ssim-rgb"] == [None] * 8 and results["lpips"] == [None] * 8
    assert "dss" not in results and len(results["encoding_time"]) == 8


def test_resume_skips_finished_rows_and_redoes_a_torn_one(dataset, tmp_path, counted):
    out = tmp_path / "out"
    run(dataset, out)
    assert len(counted) == 16
    counted.clear()
    run(dataset, out)
    assert counted == []

    # An interrupted run: the last two rows never finished, the one before was cut mid-line.
    csv_path = out / ROWS_FILE
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text("".join(lines[:-3]) + lines[-3][:20])
    run(dataset, out)
    assert len(counted) == 3
    assert len(read_rows(csv_path)) == 16


def test_asking_for_more_metrics_redoes_rows_with_lpips_on_a_random_backbone(dataset, tmp_path, counted):
    out = tmp_path / "out"
    run(dataset, out)
    counted.clear()
    run(dataset, out, MetricSet(lpips=True, random_backbone=True, weight_free=("gmsd",)))
    assert len(counted) == 16
    results = read_curve(out / "jpeg-420.json").results
    assert all(v > 0 for v in results["lpips"]) and all(v > 0 for v in results["gmsd"])
    counted.clear()
    run(dataset, out, MetricSet())  # fewer metrics than the rows have: nothing to do
    assert counted == []


def test_force_redoes_everything_and_foreign_curves_are_protected(dataset, tmp_path, counted):
    out = tmp_path / "out"
    run(dataset, out)
    counted.clear()
    run(dataset, out, force=True)
    assert len(counted) == 16

    other = tmp_path / "other"
    other.mkdir()
    (other / "jpeg-420.json").write_text("{}")
    with pytest.raises(InputError, match="already exists"):
        run(dataset, other)
    assert (other / "jpeg-420.json").read_text() == "{}"


def test_empty_dataset_is_a_user_error(tmp_path):
    with pytest.raises(InputError, match="no images in this folder$"):
        run(tmp_path, tmp_path / "out")


def test_nested_dataset_error_names_the_subfolder(tmp_path):
    (tmp_path / "valid").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "valid" / "a.png")
    with pytest.raises(InputError, match=r"subfolders are not searched; images are in valid\)"):
        run(tmp_path, tmp_path / "out")
