"""`lic report`: the plots, tables, crops and page it writes agree with the results they come from."""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from lic.eval.bdrate import bd_table, format_table
from lic.eval.codecs import resolve
from lic.eval.harness import MetricSet, evaluate
from lic.eval.results import read_curve
from helpers import photo_folder, run_lic

CODECS = ("webp", "jpeg-420", "avif")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """An image results folder of three classic codecs on two small images, and the images."""
    root = tmp_path_factory.mktemp("report")
    images = photo_folder(root / "set", ("a.png", 176, 192), ("b.png", 168, 176))
    out = root / "results"
    evaluate(images, [resolve(c) for c in CODECS], out, MetricSet(), log=lambda line: None)
    return out, images


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("src", "href") if k in attrs]
        self.tables += tag == "table"


def report(results, out, *args):
    r = run_lic("report", str(results), "-o", str(out), *map(str, args))
    assert r.exit_code == 0, r.output
    return r


def latex_rows(tex: str) -> list[list[str]]:
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    return [[cell.strip() for cell in line.rstrip(" \\").split(" & ")] for line in body.strip().splitlines()]


def test_report_of_image_results_has_plots_tables_crops_and_an_offline_page(results, tmp_path):
    folder, images = results
    out = tmp_path / "report"
    report(folder, out, "--images", images, "--crop-codec", "jpeg-420", "--crop-codec", "webp",
           "--crop-codec", "avif", "--crop-quality", 10, "--crop-size", 64)

    # Plots: vector PDF (no timestamp, fonts embedded) and PNG for each measured metric.
    for metric in ("psnr-rgb", "psnr-y", "ms-ssim-rgb"):
        pdf = (out / "figures" / f"rd-{metric}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf and b"FontFile2" in pdf
        assert Image.open(out / "figures" / f"rd-{metric}.png").size == (1050, 780)  # 3.5 x 2.6 in at 300 dpi

    # Tables: the Markdown is the BD table of the curves; every LaTeX cell is the same number.
    curves = [read_curve(folder / f"{c}.json") for c in sorted(CODECS)]  # the report reads them by file name
    rows = bd_table(curves, "webp", ("psnr-rgb", "ms-ssim-rgb"))
    assert (out / "bd-vs-webp.md").read_text() == format_table(rows, "webp")
    tex = (out / "bd-vs-webp.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"\label{tab:bd}" in tex
    assert tex.count(r"\begin{") == tex.count(r"\end{")
    got = {cells[0]: cells[1:] for cells in latex_rows(tex)}
    assert set(got) == {"jpeg-420", "avif"}
    kept = [m for m in ("psnr-rgb", "ms-ssim-rgb") if any(r.rate[m] is not None or r.delta[m] is not None for r in rows)]
    assert "psnr-rgb" in kept
    for row in rows:
        cells = [c.replace(r"$^\dagger$", "").replace(r"\%", "") for c in got[row.codec]]
        expected = [v for m in kept for v in (row.rate[m], row.delta[m])]
        assert [None if c == "n/a" else float(c) for c in cells] == pytest.approx(expected, abs=0.051)

    # Crops: jpeg-420 q10 on the first image; webp and avif at their quality nearest its bpp.
    crops = sorted(p.name for p in (out / "crops").iterdir())
    assert "a-original.png" in crops and "a-jpeg-420-q10.png" in crops and len(crops) == 4
    original = np.asarray(Image.open(images / "a.png").convert("RGB"))
    jpeg = resolve("jpeg-420")
    expected_crop = jpeg.decode(jpeg.encode(original, 10))[56:120, 64:128]
    assert np.array_equal(np.asarray(Image.open(out / "crops" / "a-jpeg-420-q10.png")), expected_crop)

    # The page: every link is a file inside the report; nothing comes from the network.
    page = (out / "index.html").read_text()
    parser = Links()
    parser.feed(page)
    assert parser.tables == 1 and len(parser.links) == 2 * 3 + 4
    for link in parser.links:
        assert "://" not in link and not link.startswith("/") and (out / link).is_file(), link
    assert "://" not in page and "<script" not in page


@pytest.mark.slow
def test_report_of_video_results_has_one_column_per_clip(tmp_path):
    from helpers import clip, write

    clips = [tmp_path / "one.mkv", tmp_path / "two.mkv"]
    write(clips[0], clip(6, 64), fps=25)
    write(clips[1], clip(6, 64)[::-1], fps=25)
    results = tmp_path / "video"
    r = run_lic("eval-video", *map(str, clips), "-c", "x264", "-c", "x265", "--crf", "40", "--crf", "30",
                            "--crf", "20", "-o", str(results))
    assert r.exit_code == 0, r.output
    out = tmp_path / "report"
    report(results, out)
    assert {p.name for p in (out / "figures").glob("*.pdf")} == {
        f"{c}-rd-{m}.pdf" for c in ("one", "two") for m in ("psnr-rgb", "psnr-y")}
    tex = (out / "bd-vs-x264.tex").read_text()
    assert "Codec & one & two & Mean" in tex
    [x265] = latex_rows(tex.split(r"\end{table}")[0])
    values = [float(c.replace(r"$^\dagger$", "").replace(r"\%", "")) for c in x265[1:]]
    assert values[2] == pytest.approx((values[0] + values[1]) / 2, abs=0.06)


def test_report_of_chosen_codecs_leaves_the_others_out(results, tmp_path):
    folder, _ = results
    out = tmp_path / "report"
    report(folder, out, "-c", "webp", "-c", "avif")
    assert "jpeg-420" not in (out / "bd-vs-webp.md").read_text() + (out / "bd-vs-webp.tex").read_text()
    r = run_lic("report", str(folder), "-o", str(out), "-c", "webp", "-c", "jxl")
    assert r.exit_code == 1 and "no curve of jxl" in r.output


def test_report_needs_a_results_folder(tmp_path):
    r = run_lic("report", str(tmp_path), "-o", str(tmp_path / "out"))
    assert r.exit_code == 1 and "no curve JSONs" in r.output and "Traceback" not in r.output


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX installation (pdflatex) on this machine")
def test_report_latex_compiles(results, tmp_path):
    folder, _ = results
    out = tmp_path / "report"
    report(folder, out)
    (out / "paper.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}"
                                   "\\begin{document}\\input{bd-vs-webp.tex}"
                                   "\\includegraphics{figures/rd-psnr-rgb.pdf}\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert re.search(rb"%PDF", (out / "paper.pdf").read_bytes()[:8])
