"""ColorVideoVDP (JOD) through lic's harness: checked against the cvvdp package called directly,
rows completed in place, display models kept apart, and a missing extra named in one line."""

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from lic.eval import cvvdp, harness
from lic.eval.bdrate import bd_table
from lic.eval.codecs import resolve
from lic.eval.harness import Meter, MetricSet, evaluate
from lic.eval.results import COLUMNS, ROWS_FILE, Curve, make_curve, read_curve, read_rows
from helpers import photo_folder, photo_like, run_lic

needs_cvvdp = pytest.mark.skipif(not cvvdp.available(), reason="cvvdp is not installed (pip install 'lic[perceptual]')")


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture()
def dataset(tmp_path):
    return photo_folder(tmp_path / "tiny", ("a.png", 176, 168), ("b.png", 64, 96))


@needs_cvvdp
@pytest.mark.parametrize("display", ["standard_4k", "standard_fhd"])
def test_jod_through_lic_matches_cvvdp_called_directly(display):
    import pycvvdp
    import torch

    original = photo_like(256, 320, seed=3)
    coded = jpeg(original, 30)
    ours = Meter(MetricSet(display=display))(original, coded)
    direct = pycvvdp.cvvdp(display_name=display, device=torch.device("cpu"), quiet=True)
    theirs = float(direct.predict(coded, original, dim_order="HWC")[0])
    assert ours["cvvdp"] == pytest.approx(theirs, abs=0.05) and ours["cvvdp-display"] == display
    assert 0 < ours["cvvdp"] < 10
    assert Meter(MetricSet(display=display))(original, original.copy())["cvvdp"] == pytest.approx(10, abs=1e-3)


@needs_cvvdp
def test_clip_jod_streamed_frame_by_frame_equals_the_whole_clip_in_memory():
    import pycvvdp
    import torch

    rng = np.random.default_rng(0)
    reference = np.stack([photo_like(64, 96, seed=s) for s in range(10)])
    test = np.clip(reference.astype(int) + rng.integers(-20, 21, reference.shape), 0, 255).astype(np.uint8)
    pairs = iter(zip(reference, test))
    streamed = cvvdp.load("standard_4k").video(pairs, 64, 96, 10, 25.0)
    direct = pycvvdp.cvvdp(display_name="standard_4k", device=torch.device("cpu"), quiet=True)
    whole = float(direct.predict(test, reference, dim_order="FHWC", frames_per_second=25)[0])
    assert streamed == pytest.approx(whole, abs=1e-4)
    assert next(pairs, None) is None  # exactly the clip's frames were read


@needs_cvvdp
def test_asking_for_jod_completes_rows_in_place_and_another_display_redoes_it(dataset, tmp_path, monkeypatch):
    calls = []
    real = harness.measure
    monkeypatch.setattr(harness, "measure", lambda *a: calls.append(a[4]) or real(*a))
    codecs, out = [resolve("jpeg-420")], tmp_path / "out"
    evaluate(dataset, codecs, out, MetricSet(), log=lambda line: None)
    before = {(r["quality"], r["image"]): r for r in read_rows(out / ROWS_FILE)}
    assert all(r["cvvdp"] is None and r["cvvdp-display"] == "" for r in before.values())

    calls.clear()
    evaluate(dataset, codecs, out, MetricSet(display="standard_4k"), log=lambda line: None)
    assert len(calls) == 16 and all(earlier is not None for earlier in calls)  # completed, not redone
    after = {(r["quality"], r["image"]): r for r in read_rows(out / ROWS_FILE)}
    for key, row in after.items():
        assert row["cvvdp-display"] == "standard_4k" and 0 < row["cvvdp"] <= 10
        same = {c: str(v) for c, v in row.items() if c not in ("cvvdp", "cvvdp-display")}  # str: nan == nan
        assert same == {c: str(v) for c, v in before[key].items() if c not in ("cvvdp", "cvvdp-display")}  # times too
    curve = json.loads((out / "jpeg-420.json").read_text())
    assert curve["cvvdp-display"] == "standard_4k" and len(curve["results"]["cvvdp"]) == 8

    calls.clear()
    evaluate(dataset, codecs, out, MetricSet(display="standard_4k"), log=lambda line: None)
    assert calls == []
    evaluate(dataset, codecs, out, MetricSet(display="standard_fhd"), log=lambda line: None)
    assert len(calls) == 16
    fhd = {(r["quality"], r["image"]): r for r in read_rows(out / ROWS_FILE)}
    assert all(r["cvvdp-display"] == "standard_fhd" for r in fhd.values())
    assert any(fhd[k]["cvvdp"] != after[k]["cvvdp"] for k in fhd)  # the display model matters


def test_a_csv_from_before_the_jod_columns_is_read_with_them_empty(tmp_path):
    old = [c for c in COLUMNS if c not in ("cvvdp", "cvvdp-display")]
    path = tmp_path / ROWS_FILE
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(old)
        writer.writerow(["webp", "", 50, "a.png", 8, 8, 10, 1.25, 30.0, 31.0, "nan", "", "", "", "", 0.1, 0.2])
    [row] = read_rows(path)
    assert row["cvvdp"] is None and row["cvvdp-display"] == "" and row["psnr-y"] == 31.0 and row["bytes"] == 10


def _rows(display_by_image: dict[str, str]) -> list[dict]:
    return [{"quality": 1, "image": image, "bpp": 0.1, "cvvdp": 9.0, "cvvdp-display": display,
             **{k: None for k in ("psnr-rgb", "psnr-y", "ms-ssim-rgb", "lpips", "dss", "haarpsi", "gmsd",
                                                "encoding_time", "decoding_time")}}
            for image, display in display_by_image.items()]


def test_jod_of_different_displays_is_never_averaged_or_compared():
    mixed = make_curve("x", "", "set", (1,), _rows({"a": "standard_4k", "b": "standard_fhd"}))
    assert mixed["results"]["cvvdp"] == [None] and "cvvdp-display" not in mixed
    one = make_curve("x", "", "set", (1,), _rows({"a": "standard_4k", "b": "standard_4k"}))
    assert one["results"]["cvvdp"] == [9.0] and one["cvvdp-display"] == "standard_4k"

    def curve(name, display, jod):
        return Curve(name, "", "set", {"bpp": [0.1, 0.2, 0.4], "cvvdp": jod, "psnr-rgb": [30, 32, 34]}, None, display)

    anchor = curve("anchor", "standard_4k", [8.0, 8.5, 9.0])
    same, other = curve("same", "standard_4k", [8.2, 8.7, 9.2]), curve("other", "standard_fhd", [8.2, 8.7, 9.2])
    rows = {r.codec: r for r in bd_table([anchor, same, other], "anchor", ("cvvdp",))}
    assert rows["same"].rate["cvvdp"] < 0 and rows["same"].delta["cvvdp"] == pytest.approx(0.2, abs=1e-6)
    assert rows["other"].rate["cvvdp"] is None and rows["other"].delta["cvvdp"] is None


def test_without_the_extra_jod_is_one_line_saying_how_to_install_it(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(cvvdp, "available", lambda: False)
    r = run_lic("eval", str(dataset), "-c", "webp", "--metric", "cvvdp", "-o", str(tmp_path / "o"))
    assert r.exit_code == 1 and r.output.strip().endswith("pip install 'lic[perceptual]' (the cvvdp package)")
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()
    r = run_lic("eval", str(dataset), "-c", "jpeg-420", "--perceptual", "-o", str(tmp_path / "p"))
    assert r.exit_code == 0 and "JOD skipped" in r.output  # --perceptual measures what it can


@needs_cvvdp
def test_an_unknown_display_is_one_line_naming_the_known_ones(dataset, tmp_path):
    r = run_lic("eval", str(dataset), "-c", "webp", "--metric", "cvvdp", "--display", "crt",
                            "-o", str(tmp_path / "o"))
    assert r.exit_code == 1 and "unknown display 'crt'" in r.output and "standard_fhd" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@needs_cvvdp
def test_eval_video_measures_whole_clip_jod_and_reports_bd_jod(tmp_path):
    from helpers import clip, write

    path = tmp_path / "tiny.mkv"
    write(path, clip(8, 64), fps=25)
    out = tmp_path / "results"
    r = run_lic("eval-video", str(path), "-c", "x264", "-c", "x265", "--crf", "40", "--crf", "30",
                            "--crf", "20", "--metric", "cvvdp", "-o", str(out))
    assert r.exit_code == 0, r.output
    from lic.eval.video_harness import VIDEO_ROWS

    rows = read_rows(out / "per-clip.csv", VIDEO_ROWS)
    assert len(rows) == 6 and all(0 < row["cvvdp"] <= 10 and row["cvvdp-display"] == "standard_4k" for row in rows)
    x264 = sorted((row for row in rows if row["codec"] == "x264"), key=lambda row: row["bpp"])
    assert x264[0]["cvvdp"] < x264[-1]["cvvdp"]
    assert read_curve(out / "tiny" / "x264.json").display == "standard_4k"
    assert "| BD-rate JOD |" in r.output and "| BD-JOD |" in r.output and (out / "tiny" / "rd-cvvdp.png").is_file()
