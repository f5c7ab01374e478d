"""`lic eval` and `lic plot` through Typer's runner, on a folder of two small images."""

import json

import pytest

from helpers import photo_folder, run_lic


@pytest.fixture()
def dataset(tmp_path):
    # named like the real set, so published Kodak curves apply
    return photo_folder(tmp_path / "kodak", ("one.png", 176, 168), ("two.png", 168, 176))


@pytest.fixture(autouse=True)
def no_lpips_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.mark.slow
def test_eval_then_plot(dataset, tmp_path, tiny_model):
    out = tmp_path / "results"
    r = run_lic("eval", dataset, "-c", "webp", "-c", "jpeg-420", "-c", f"lic-{tiny_model}",
            "--metric", "haarpsi", "-j", "2", "-o", out)
    assert r.exit_code == 0, r.output
    assert "LPIPS skipped" in r.output and "never downloads" in r.output
    assert "BD vs webp" in r.output and "| jpeg-420 |" in r.output and "| lic-tiny |" in r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bd-vs-webp.md", "jpeg-420.json", "lic-tiny.json", "per-image.csv", "webp.json"]
    assert len((out / "per-image.csv").read_text().splitlines()) == 1 + 2 * (8 + 8 + 1)
    lic_curve = json.loads((out / "lic-tiny.json").read_text())
    assert lic_curve["results"]["quality"] == [2] and lic_curve["results"]["haarpsi"][0] > 0

    r = run_lic("eval", dataset, "-c", "webp", "-o", out)
    assert r.exit_code == 0 and "resuming: 16 of 16 rows" in r.output

    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "paper.json").write_text(json.dumps({
        "name": "paper", "dataset": "kodak", "reference": {"citation": "A paper, Table 1"},
        "results": {"bpp": [0.2, 0.5, 1.0], "psnr": [28.0, 31.0, 34.0]}}))
    (reference / "elsewhere.json").write_text(json.dumps({
        "name": "clic-only", "dataset": "clic", "results": {"bpp": [0.2, 0.5], "psnr-rgb": [30.0, 33.0]}}))
    plots = tmp_path / "plots"
    r = run_lic("plot", out, "-o", plots, "--reference", reference, "--anchor", "paper")
    assert r.exit_code == 0, r.output
    assert "elsewhere.json: left out, it is for clic" in r.output
    assert "BD vs paper" in r.output and "| webp |" in r.output
    assert sorted(p.name for p in plots.iterdir()) == [
        f"rd-{m}.{ext}" for m in ("haarpsi", "ms-ssim-rgb", "psnr-rgb", "psnr-y") for ext in ("pdf", "png")]
    assert (plots / "rd-psnr-rgb.pdf").read_bytes()[:5] == b"%PDF-"

    r = run_lic("plot", out / "webp.json", "-o", plots)
    assert r.exit_code == 1 and "already exists" in r.output and "Traceback" not in r.output
    assert run_lic("plot", out / "webp.json", "-o", plots, "--force").exit_code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "bpg"], "unknown codec 'bpg'"),
        (["-c", "webp", "--metric", "vmaf"], "unknown metric 'vmaf'"),
        (["-c", "lic-missing"], "unknown model 'missing'"),
    ],
)
def test_eval_user_errors_are_one_line(dataset, tmp_path, args, message):
    r = run_lic("eval", dataset, "-o", tmp_path / "out", *args)
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_plot_refuses_a_file_that_is_not_a_curve(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    r = run_lic("plot", bad)
    assert r.exit_code == 1 and "not an RD results JSON" in r.output
