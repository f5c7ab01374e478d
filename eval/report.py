"""`lic report`: from a results folder of `lic eval` or `lic eval-video` to what a paper includes.

    lic report eval/results/kodak -o report/ --images ../shared/data/kodak

writes into report/:

- `figures/rd-<metric>.pdf` and `.png` for every metric measured (video: `figures/<clip>-rd-<metric>.*`),
  one column wide (3.5 in) in a serif font at 8 pt, fonts embedded as TrueType so the PDFs pass
  publishers' checks; PDFs are vector and carry no timestamp;
- `bd-vs-<anchor>.md` and `bd-vs-<anchor>.tex`: BD-rate and BD-quality of every codec against
  the anchor (video: per clip and the mean), the LaTeX as a booktabs `table` with `\\label`;
- `crops/` (with `--images`): centre crops of one image coded by a lic codec and by WebP and
  AVIF at the quality whose file on that image has the bpp nearest to lic's (from the rows);
- `index.html`: the plots, the tables and the crops on one page that opens offline (images by
  relative links inside the folder, no script, no font or style sheet from the network).

Everything is computed from the folder's curve JSONs and rows; the crops are coded again from
`--images` (decoded images are not kept by `lic eval`).
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.figure import Figure
from PIL import Image

from lic.errors import InputError
from lic.eval.bdrate import (DELTA_DIGITS, DELTA_LABELS, RATE_LABELS, MIN_OVERLAP, BdRow, bd_notes, bd_table,
                             format_clip_table, format_table)
from lic.eval.results import METRICS, ROWS_FILE, Curve, read_curve, read_rows
from lic.files import atomic_write

#: Metrics of the image tables and plots, in order (others a folder has are plotted too).
IMAGE_METRICS = ("psnr-rgb", "ms-ssim-rgb", "cvvdp", "lpips")
VIDEO_METRICS = ("psnr-rgb", "psnr-y", "cvvdp")
_MARKERS = "osD^v<>p*"
#: One column of a two-column paper, in a serif font at the size of its captions.
PAPER_STYLE = {
    "font.family": "serif", "font.serif": ["STIXGeneral", "DejaVu Serif"], "mathtext.fontset": "stix",
    "font.size": 8, "axes.labelsize": 8, "legend.fontsize": 6.5, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "axes.linewidth": 0.6, "lines.linewidth": 1.0, "lines.markersize": 3, "pdf.fonttype": 42,
}
FIGURE_SIZE = (3.5, 2.6)  # inches
_SAVE = {"pdf": {"metadata": {"CreationDate": None}}, "png": {"dpi": 300, "metadata": {"Software": None}}}


@dataclass(frozen=True)
class Section:
    """One set of curves that share axes: a dataset, or one clip of a video results folder."""

    title: str
    prefix: str  # of its figure files
    curves: list[Curve]


def sections(results: Path) -> tuple[list[Section], bool]:
    """The folder's curves: top-level JSONs (an image results folder) or one section per clip
    subfolder (a video one); and whether it is video."""
    if not results.is_dir():
        raise InputError(f"{results}: no such folder")
    top = sorted(results.glob("*.json"))
    if top:
        curves = [read_curve(p) for p in top]
        return [Section(curves[0].dataset or results.name, "", curves)], False
    clips = [d for d in sorted(results.iterdir()) if d.is_dir() and any(d.glob("*.json"))]
    if not clips:
        raise InputError(f"{results}: no curve JSONs here or in its subfolders (a folder of lic eval or eval-video)")
    return [Section(d.name, f"{d.name}-", [read_curve(p) for p in sorted(d.glob("*.json"))]) for d in clips], True


def _metrics(curves: list[Curve], order: tuple[str, ...]) -> list[str]:
    measured = [m for m in METRICS if any(c.points(m)[0] for c in curves)]
    return [m for m in order if m in measured] + [m for m in measured if m not in order]


def _label(metric: str, curves: list[Curve]) -> str:
    label = METRICS[metric].label
    displays = sorted({c.display for c in curves if c.display and c.points(metric)[0]})
    if metric == "cvvdp" and displays:
        label += f" ({', '.join(displays)})"
    return label + ("" if METRICS[metric].higher_is_better else ", lower is better")


def figure(curves: list[Curve], metric: str, log_bpp: bool) -> Figure:
    """One RD plot in the paper style; each codec keeps its colour and marker across plots."""
    with rc_context(PAPER_STYLE):
        fig = Figure(figsize=FIGURE_SIZE, layout="constrained")
        ax = fig.add_subplot()
        colours = colormaps["tab10"].colors
        for i, curve in enumerate(curves):
            rates, values = curve.points(metric)
            if rates:
                ax.plot(rates, values, label=curve.name, color=colours[i % len(colours)],
                        marker=_MARKERS[i % len(_MARKERS)])
        ax.set_xlabel("Rate [bpp]")
        ax.set_ylabel(_label(metric, curves))
        if log_bpp:
            ax.set_xscale("log")
        ax.grid(True, which="major", alpha=0.3, linewidth=0.4)
        ax.legend(loc="lower right", frameon=False, ncols=2 if len(curves) > 6 else 1)
    return fig


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    paths = []
    with rc_context(PAPER_STYLE):
        for ext, options in _SAVE.items():
            buffer = io.BytesIO()
            fig.savefig(buffer, format=ext, **options)
            path = stem.with_suffix(f".{ext}")
            atomic_write(path, buffer.getvalue(), force=True)
            paths.append(path)
    return paths


_TEX_ESCAPES = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
                              "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"})


def _tex(text: str) -> str:
    return text.translate(_TEX_ESCAPES)


def _tex_cell(value: float | None, share: float, digits: int, percent: bool) -> str:
    if value is None:
        return "n/a"
    cell = f"{value:+.{digits}f}" + (r"\%" if percent else "")
    return cell + (r"$^\dagger$" if share < MIN_OVERLAP else "")


def latex_table(rows: list[BdRow], anchor: str, metrics: list[str], caption: str, label: str) -> str:
    """A booktabs table: one codec per row, BD-rate and BD-quality per metric."""
    header = [f"{_tex(RATE_LABELS[m])} & {_tex(DELTA_LABELS[m])}" for m in metrics]
    lines = [
        r"\begin{table}[t]", r"\centering", r"\small",
        rf"\caption{{{_tex(caption)} $^\dagger$: the curves overlap over less than half of their joint range.}}",
        rf"\label{{{label}}}", r"\begin{tabular}{l" + "rr" * len(metrics) + "}", r"\toprule",
        "Codec & " + " & ".join(header) + r" \\", r"\midrule",
    ]
    for r in rows:
        cells = [_tex(r.codec)]
        for m in metrics:
            cells.append(_tex_cell(r.rate[m], r.rate_overlap[m], 1, True))
            cells.append(_tex_cell(r.delta[m], r.delta_overlap[m], DELTA_DIGITS.get(m, 2), False))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def latex_clip_table(tables: dict[str, list[BdRow]], metric: str, caption: str, label: str) -> str:
    """BD-rate on one metric, one codec per row and one clip per column, with the mean."""
    clips = list(tables)
    codecs = list(dict.fromkeys(r.codec for rows in tables.values() for r in rows))
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex(caption)}}}", rf"\label{{{label}}}",
             r"\begin{tabular}{l" + "r" * (len(clips) + 1) + "}", r"\toprule",
             "Codec & " + " & ".join(_tex(c) for c in clips) + r" & Mean \\", r"\midrule"]
    for codec in codecs:
        values, cells, shares = [], [_tex(codec)], []
        for clip in clips:
            row = next((r for r in tables[clip] if r.codec == codec), None)
            value, share = (None, 0.0) if row is None else (row.rate[metric], row.rate_overlap[metric])
            cells.append(_tex_cell(value, share, 1, True))
            values.append(value)
            shares.append(share)
        mean = None if None in values else sum(values) / len(values)
        cells.append(_tex_cell(mean, min(shares), 1, True))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


@dataclass
class Crop:
    codec: str
    quality: int
    bpp: float
    psnr: float
    jod: float | None
    path: Path


def _nearest_row(rows: list[dict], codec: str, image: str, bpp: float) -> dict:
    mine = [r for r in rows if r["codec"] == codec and r["image"] == image]
    if not mine:
        raise InputError(f"no rows of {codec} on {image} in the results: cannot match its bpp")
    return min(mine, key=lambda r: abs(r["bpp"] - bpp))


def crops(results: Path, images: Path, out: Path, image: str | None, codecs: list[str], quality: int | None,
          size: int) -> tuple[str, list[Crop]]:
    """Codes one image with the first codec (at `quality`, default its lowest) and the others at
    their quality nearest to its bpp on that image; writes lossless centre crops of the original
    and of each decoded image, `size` pixels square."""
    from lic.eval.codecs import resolve
    from lic.imageio import load_image

    rows = [r for r in read_rows(results / ROWS_FILE)]
    lead = [r for r in rows if r["codec"] == codecs[0]]
    if not lead:
        raise InputError(f"{results / ROWS_FILE}: no rows of {codecs[0]} (choose --crop-codec from the results)")
    image = image or sorted(r["image"] for r in lead)[0]
    if quality is None:
        quality = min(r["quality"] for r in lead)
    first = next((r for r in lead if r["image"] == image and r["quality"] == quality), None)
    if first is None:
        raise InputError(f"no row of {codecs[0]} q{quality} on {image} in {results / ROWS_FILE}")
    chosen = [first] + [_nearest_row(rows, c, image, first["bpp"]) for c in codecs[1:]]
    original = load_image(images / image).rgb
    h, w = original.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    window = (slice(top, top + size), slice(left, left + size))
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(image).stem
    reference = out / f"{stem}-original.png"
    Image.fromarray(original[window]).save(reference)
    made = []
    for row in chosen:
        codec = resolve(row["codec"])
        codec.prepare(row["quality"])
        decoded = codec.decode(codec.encode(original, row["quality"]))
        path = out / f"{stem}-{row['codec']}-q{row['quality']}.png"
        Image.fromarray(np.ascontiguousarray(decoded[window])).save(path)
        made.append(Crop(row["codec"], row["quality"], row["bpp"], row["psnr-rgb"], row["cvvdp"], path))
    return image, [Crop("original", 0, 0.0, 0.0, None, reference), *made]


def _html_table(markdown: str) -> str:
    """A Markdown table (and its note lines) as HTML."""
    lines = markdown.strip().splitlines()
    table = [line for line in lines if line.startswith("|")]
    notes = [line for line in lines if line and not line.startswith("|") and not line.startswith("#")]
    cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in table]
    body = [f"<tr>{''.join(f'<th>{c}</th>' for c in cells[0])}</tr>"]
    body += [f"<tr>{''.join(f'<td>{c}</td>' for c in row)}</tr>" for row in cells[2:]]
    return "<table>" + "".join(body) + "</table>" + "".join(f"<p class=note>{html.escape(n)}</p>" for n in notes)


_CSS = ("body{font-family:serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #ccc;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.note{font-size:small;color:#444}"
        "figure{display:inline-block;margin:4px;text-align:center}figure img{image-rendering:pixelated}"
        "figcaption{font-size:small}")


def html_page(title: str, plots: list[tuple[str, Path]], tables: list[tuple[str, str]], crop_image: str | None,
              crop_list: list[Crop], out: Path, zoom: int = 2) -> str:
    """The report page: every image by a relative link into `out`, nothing from the network."""
    rel = lambda p: html.escape(p.relative_to(out).as_posix())  # noqa: E731
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>", "<h2>Rate-distortion curves</h2>"]
    for caption, png in plots:
        pdf = png.with_suffix(".pdf")
        parts.append(f"<figure><img src=\"{rel(png)}\" alt=\"{html.escape(caption)}\" width=525>"
                     f"<figcaption>{html.escape(caption)} (<a href=\"{rel(pdf)}\">PDF</a>)</figcaption></figure>")
    for heading, markdown in tables:
        parts.append(f"<h2>{html.escape(heading)}</h2>{_html_table(markdown)}")
    if crop_list:
        parts.append(f"<h2>Crops of {html.escape(crop_image or '')} at matched bpp</h2><div>")
        for c in crop_list:
            label = "original" if c.codec == "original" else (
                f"{c.codec} q{c.quality}: {c.bpp:.3f} bpp, {c.psnr:.2f} dB" + ("" if c.jod is None else f", {c.jod:.2f} JOD"))
            size = Image.open(c.path).size
            parts.append(f"<figure><img src=\"{rel(c.path)}\" alt=\"{html.escape(label)}\" width={size[0] * zoom} "
                         f"height={size[1] * zoom}><figcaption>{html.escape(label)}</figcaption></figure>")
        parts.append("</div><p class=note>Centre crops, enlarged without interpolation; bpp, PSNR and JOD of the "
                     "whole image, from the results' rows.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(results: Path, out: Path, anchor: str | None = None, images: Path | None = None,
                 crop_image: str | None = None, crop_codecs: tuple[str, ...] = ("lic-hyperprior", "webp", "avif"),
                 crop_quality: int | None = None, crop_size: int = 192, codecs: tuple[str, ...] = ()) -> list[Path]:
    """Writes the whole report into `out` (with `codecs`, only their curves); returns the files written."""
    found, video = sections(results)
    if codecs:
        found = [Section(s.title, s.prefix, [c for c in s.curves if c.name in codecs]) for s in found]
        missing = sorted(set(codecs) - {c.name for s in found for c in s.curves})
        if missing:
            raise InputError(f"no curve of {', '.join(missing)} in {results}")
    anchor = anchor or ("x264" if video else "webp")
    order = VIDEO_METRICS if video else IMAGE_METRICS
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written, plots = [], []
    for section in found:
        for metric in _metrics(section.curves, order):
            fig = figure(section.curves, metric, log_bpp=video)
            paths = save_figure(fig, figures / f"{section.prefix}rd-{metric}")
            written += paths
            plots.append((f"{section.title}: {METRICS[metric].label}", paths[1]))
    all_curves = [c for s in found for c in s.curves]
    metrics = [m for m in _metrics(all_curves, order) if m in order]
    tables = []
    if video:
        if not all(anchor in {c.name for c in s.curves} for s in found):
            raise InputError(f"the anchor {anchor} does not have a curve for every clip (choose --anchor)")
        per_clip = {s.title: bd_table(s.curves, anchor, tuple(metrics)) for s in found}
        markdown = "\n".join(format_clip_table(per_clip, anchor, m) for m in metrics) + "\n" + "\n".join(bd_notes(anchor)) + "\n"
        latex = "\n".join(latex_clip_table(per_clip, m, f"{RATE_LABELS[m]} against {anchor} per clip; negative: "
                                           "fewer bits for the same quality.", f"tab:bd-{m}") for m in metrics)
        tables.append((f"BD-rates against {anchor}", markdown))
    else:
        if anchor not in {c.name for c in all_curves}:
            raise InputError(f"the anchor {anchor} has no curve in {results} (choose --anchor)")
        rows = bd_table(all_curves, anchor, tuple(metrics))
        markdown = format_table(rows, anchor)
        latex = latex_table(rows, anchor, [m for m in metrics if any(r.rate[m] is not None or r.delta[m] is not None for r in rows)],
                            f"BD-rate and BD-quality against {anchor} on {found[0].title}; negative BD-rate: fewer bits "
                            "for the same quality.",
                            "tab:bd")
        tables.append((f"BD-rates against {anchor}", markdown))
    for suffix, text in (("md", markdown), ("tex", latex)):
        path = out / f"bd-vs-{anchor}.{suffix}"
        atomic_write(path, text.encode(), force=True)
        written.append(path)
    crop_image_name, crop_list = None, []
    if images is not None:
        if video:
            raise InputError("--images: crops are made for image results only")
        crop_image_name, crop_list = crops(results, images, out / "crops", crop_image, list(crop_codecs),
                                           crop_quality, crop_size)
        written += [c.path for c in crop_list]
    page = out / "index.html"
    title = f"Rate-distortion-perception report: {', '.join(s.title for s in found)}"
    atomic_write(page, html_page(title, plots, tables, crop_image_name, crop_list, out).encode(), force=True)
    return [*written, page]
