"""`lic eval`, `lic eval-video` and `lic plot`: rate-distortion-perception curves, BD-rates and plots."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from lic.cli.app import app, expand_inputs, user_errors
from lic.errors import InputError
from lic.eval.baselines import BASELINES

_CODEC_HELP = (f"Codec to sweep; repeat for several. Classic: {', '.join(BASELINES)}. "
               "lic-<model>: a zoo model (see `lic models`), a model file or a folder of model files.")


def _bd_report(curves: list, anchor: str) -> str:
    from lic.eval.bdrate import bd_table, format_table

    return format_table(bd_table(curves, anchor), anchor)


@app.command(
    name="eval",
    epilog=(
        "Examples:\n\n"
        "  lic eval ../shared/data/kodak -c webp -c jpeg-420 -c avif -o results/kodak\n\n"
        "  lic eval kodak/ -c lic-hyperprior -c webp --anchor webp    # BD-rates vs WebP\n\n"
        "  lic eval kodak/ -c avif-down4 -c lic-vq --perceptual -j 2  # DSS, HaarPSI, GMSD, JOD too\n\n"
        "  lic eval kodak/ -c webp --metric cvvdp --display standard_fhd   # ColorVideoVDP on a 24-inch FHD monitor\n\n"
        "Run it again on the same -o folder to resume: rows already there are skipped."
    ),
)
@user_errors
def evaluate(
    dataset: Path = typer.Argument(..., help="Folder of test images, e.g. Kodak's 24 PNGs."),
    codecs: list[str] = typer.Option(..., "--codec", "-c", help=_CODEC_HELP),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Results folder [default: results/<dataset folder name>]."),
    anchor: str = typer.Option("webp", help="BD-rate anchor: a codec with a curve in the results folder."),
    metric: list[str] = typer.Option(
        [], "--metric", help="Also measure a weight-free perceptual metric: dss, haarpsi, gmsd or cvvdp "
        "(ColorVideoVDP, in JOD; needs lic[perceptual]) (repeatable)."),
    perceptual: bool = typer.Option(
        False, "--perceptual", help="Measure all of dss, haarpsi, gmsd and (if installed) cvvdp."),
    display: str = typer.Option(
        "standard_4k", "--display", help="cvvdp's display model: standard_4k is a 30-inch 4K monitor, 200 cd/m^2, "
        "office light, seen from 0.75 m; standard_fhd a 24-inch FHD one from 0.6 m; any name in cvvdp's "
        "display_models.json."),
    workers: int = typer.Option(
        1, "--workers", "-j", min=1, help="Processes for the classic codecs (timings are then taken under load)."),
    device: str = typer.Option("cpu", help="Device for lic models: cpu or cuda."),
    force: bool = typer.Option(
        False, "--force", "-f", help="Redo every row of these codecs and overwrite their curves."),
    target_bpp: Optional[str] = typer.Option(
        None, "--target-bpp", help="Matched rates: code every image at these bpp (e.g. 0.1,0.25,0.5,0.75,1.0), each "
        "codec's quality searched per image; curves are named <codec>@bpp."),
) -> None:
    """Measure rate (real file bytes), PSNR, Y-PSNR, MS-SSIM, LPIPS and times per image and quality."""
    from lic.eval import cvvdp, perceptual as perceptual_metrics
    from lic.eval.codecs import resolve
    from lic.eval.harness import MetricSet, evaluate as run, list_images
    from lic.eval.results import read_curve
    from lic.files import atomic_write

    choices = (*perceptual_metrics.WEIGHT_FREE, "cvvdp")
    unknown = [m for m in metric if m not in choices]
    if unknown:
        raise InputError(f"unknown metric '{unknown[0]}' (choose from {', '.join(choices)})")
    weight_free = tuple(perceptual_metrics.WEIGHT_FREE) if perceptual else tuple(m for m in dict.fromkeys(metric) if m != "cvvdp")
    jod = "cvvdp" in metric or (perceptual and cvvdp.available())
    if perceptual and not jod:
        typer.echo(f"lic: note: JOD skipped: {cvvdp.INSTALL_HINT}", err=True)
    if jod:
        cvvdp.check_display(display)  # also says how to install cvvdp when it is missing
    resolved = [resolve(name, device) for name in dict.fromkeys(codecs)]
    if target_bpp is not None:
        from lic.eval.matched import MatchedRate, parse_targets

        targets = parse_targets(target_bpp)
        resolved = [MatchedRate(codec, targets) for codec in resolved]
    list_images(dataset)  # a wrong folder fails before any note is printed
    lpips = perceptual_metrics.backbone_checkpoint().is_file()
    if not lpips:
        typer.echo(f"lic: note: {perceptual_metrics.missing_backbone_note()}", err=True)
    out = output if output is not None else Path("results") / dataset.name

    wanted = MetricSet(lpips=lpips, weight_free=weight_free, display=display if jod else None)
    run(dataset, resolved, out, wanted, workers, force,
        log=lambda line: typer.echo(line, err=True))

    curves = [read_curve(p) for p in sorted(out.glob("*.json"))]
    if anchor not in {c.name for c in curves}:
        typer.echo(f"lic: note: no BD table: the anchor {anchor} has no curve in {out}", err=True)
        return
    report = _bd_report(curves, anchor)
    atomic_write(out / f"bd-vs-{anchor}.md", report.encode(), force=True)
    typer.echo(report)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lic plot results/kodak/*.json                    # plots next to the curves\n\n"
        "  lic plot results/kodak/ -o figures/ --anchor webp --force\n\n"
        "  lic plot results/kodak/ --reference eval/reference/  # overlay published curves"
    )
)
@user_errors
def plot(
    curves: list[Path] = typer.Argument(..., help="Curve JSONs from `lic eval` (or CompressAI), or folders of them."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Folder for the plots [default: the first curve's folder]."),
    reference: list[Path] = typer.Option(
        [], "--reference", "-r", help="Published curves to overlay (a folder or JSON; repeatable)."),
    anchor: Optional[str] = typer.Option(None, help="Also print BD-rates against this curve."),
    log_bpp: bool = typer.Option(False, "--log-bpp", help="Logarithmic bpp axis (for very low rates)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing plots."),
) -> None:
    """Plot RD curves (bpp vs PSNR, MS-SSIM in dB, LPIPS, ...) as PNG and PDF."""
    from lic.eval.plots import plot_curves
    from lic.eval.results import read_curve

    measured = [read_curve(p) for p in expand_inputs(curves, {".json"}, ".json curves")]
    datasets = {c.dataset for c in measured if c.dataset}
    published = []
    for path in expand_inputs(reference, {".json"}, ".json curves"):
        curve = read_curve(path)
        if datasets and curve.dataset and curve.dataset not in datasets:
            wanted = ", ".join(sorted(datasets))
            typer.echo(f"lic: note: {path}: left out, it is for {curve.dataset}, not {wanted}", err=True)
            continue
        published.append(dataclasses.replace(curve, reference=curve.reference or {}))
    out = output if output is not None else expand_inputs(curves, {".json"}, ".json curves")[0].parent
    if not out.is_dir():
        out.mkdir(parents=True)
    written = plot_curves(measured, out, published, log_bpp, force)
    if not written:
        raise InputError("the curves have no metric with values to plot")
    typer.echo("\n".join(str(p) for p in written))
    if anchor is not None:
        typer.echo("\n" + _bd_report(measured + published, anchor))


@app.command(
    epilog=(
        "Example (the VQ codec against downscaled AVIF and WebP, where BD-rate has no overlap):\n\n"
        "  lic compare eval/results/kodak/lic-vq.json eval/results/kodak/{avif,webp}-down{2,4}.json\n\n"
        "    --metric ms-ssim-rgb --metric dss --metric haarpsi -o eval/results/kodak/vq-vs-downscaled.md"
    )
)
@user_errors
def compare(
    test: Path = typer.Argument(..., help="The curve JSON of the codec under test."),
    baselines: list[Path] = typer.Argument(..., help="Baseline curve JSONs, or folders of them."),
    metric: list[str] = typer.Option(["psnr-rgb", "ms-ssim-rgb"], "--metric", help="Metrics to compare (repeatable)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the table here (markdown)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite --output."),
) -> None:
    """Each point of a curve against the best baseline at the same bpp (interpolated)."""
    from lic.eval.envelope import compare as compare_curves, format_table
    from lic.eval.results import METRICS, read_curve
    from lic.files import atomic_write, check_writable

    unknown = [m for m in metric if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric '{unknown[0]}' (choose from {', '.join(METRICS)})")
    if output is not None:
        check_writable(output, force)
    tested = read_curve(test)
    others = [read_curve(p) for p in expand_inputs(baselines, {".json"}, ".json curves") if p.resolve() != test.resolve()]
    table = format_table(tested, compare_curves(tested, others, metric), metric)
    table += (f"\nBest of {', '.join(c.name for c in others)} at each bpp, interpolated linearly in bpp; "
              "n/a where no baseline reaches that bpp.\n")
    if output is not None:
        atomic_write(output, table.encode(), force)
    typer.echo(table)


@app.command(
    name="eval-video",
    epilog=(
        "Examples:\n\n"
        "  lic eval-video foreman_cif.mp4 akiyo_cif.mp4 -c x264 -c x265 -c lic-video -o results/video\n\n"
        "  lic eval-video BasketballPass_416x240_50fps_100f/ --fps 50 -c x264 -c lic-video-intra\n\n"
        "  lic eval-video clip.mkv -c x264 --crf 30 --crf 35 --frames 32   # a quick look\n\n"
        "  lic eval-video foreman_cif.mp4 -c x264 -c lic-video --metric cvvdp --frames 32   # JOD too\n\n"
        "Run it again on the same -o folder to resume: rows already there are skipped."
    ),
)
@user_errors
def evaluate_video(
    clips: list[Path] = typer.Argument(
        ..., help="Video files (mp4, mkv, y4m, ...: anything FFmpeg reads) or folders of numbered frames."),
    codecs: list[str] = typer.Option(
        ..., "--codec", "-c", help="x264, x265 (low-delay P, 4:4:4, CRF sweep), lic-video (P-frames) or "
        "lic-video-intra (intra frames only); repeat for several."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results folder [default: results/video]."),
    anchor: str = typer.Option("x264", help="BD-rate anchor: a codec with curves in the results folder."),
    crf: list[int] = typer.Option(
        [], "--crf", help="CRF points of x264 and x265 (repeatable) [default: 44, 42, ..., 12]."),
    fps: Optional[str] = typer.Option(
        None, "--fps", help="Frame rate of frame folders, e.g. 50 or 30000/1001 [default: 25]."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Code only the first N frames of each clip."),
    metric: list[str] = typer.Option(
        [], "--metric", help="cvvdp: also ColorVideoVDP over each whole clip, in JOD (needs lic[perceptual])."),
    display: str = typer.Option("standard_4k", "--display", help="cvvdp's display model (see lic eval --help)."),
    device: str = typer.Option("cpu", help="Device for lic models: cpu or cuda."),
    force: bool = typer.Option(
        False, "--force", "-f", help="Redo every row of these codecs (and overwrite their curves)."),
) -> None:
    """Measure rate (real file bytes), RGB and Y PSNR, JOD (--metric cvvdp) and coding speed per clip and quality."""
    from fractions import Fraction

    from lic.eval import cvvdp
    from lic.eval.video_baselines import VIDEO_BASELINES
    from lic.eval.video_codecs import resolve_video
    from lic.eval.video_harness import Clip, evaluate_video as run, report
    from lic.files import atomic_write

    try:
        folder_fps = None if fps is None else Fraction(fps)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--fps {fps}: not a frame rate (give e.g. 25, 29.97 or 30000/1001)") from None
    if folder_fps is not None and folder_fps <= 0:
        raise InputError(f"--fps {fps}: the frame rate must be positive")
    unknown = [m for m in metric if m != "cvvdp"]
    if unknown:
        raise InputError(f"unknown metric '{unknown[0]}' (eval-video measures PSNR always and cvvdp when asked)")
    if metric:
        cvvdp.check_display(display)  # also says how to install cvvdp when it is missing
    resolved = [resolve_video(name, device) for name in dict.fromkeys(codecs)]
    if crf:
        sweep = tuple(sorted(set(crf), reverse=True))
        resolved = [dataclasses.replace(c, qualities=sweep) if c.name in VIDEO_BASELINES else c for c in resolved]
    out = output if output is not None else Path("results") / "video"
    chosen = [Clip(path, folder_fps, frames) for path in clips]

    run(chosen, resolved, out, force, log=lambda line: typer.echo(line, err=True), display=display if metric else None)

    text = report(out, [c.name for c in chosen], anchor)
    atomic_write(out / f"bd-vs-{anchor}.md", text.encode(), force=True)
    typer.echo(text)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lic report eval/results/kodak -o report/ --images ../shared/data/kodak\n\n"
        "  lic report eval/results/video-32f -o report-video/        # BD per clip against x264\n\n"
        "  lic report eval/results/kodak -o vq/ --images kodak/ --crop-codec lic-vq --crop-codec avif-down4 "
        "--crop-codec webp-down4 --crop-quality 4"
    )
)
@user_errors
def report(
    results: Path = typer.Argument(..., help="A results folder of lic eval (curve JSONs) or lic eval-video (clip folders)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the report (created; its files are replaced)."),
    anchor: Optional[str] = typer.Option(None, help="BD anchor [default: webp for images, x264 for video]."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="The images the results were measured on: adds crops at matched bpp."),
    crop_image: Optional[str] = typer.Option(None, "--crop-image", help="Image of the crops [default: the first]."),
    crop_codec: list[str] = typer.Option(
        ["lic-hyperprior", "webp", "avif"], "--crop-codec",
        help="Codecs of the crops (repeatable): the first at --crop-quality, the others at its bpp."),
    crop_quality: Optional[int] = typer.Option(None, "--crop-quality", help="Quality of the first crop codec [default: its lowest]."),
    crop_size: int = typer.Option(192, "--crop-size", min=16, help="Side of the centre crops in pixels."),
    codec: list[str] = typer.Option(
        [], "--codec", "-c", help="Only these curves in plots and tables (repeatable) [default: all]."),
) -> None:
    """A paper kit from results: RD plots (PDF, PNG), BD tables (Markdown, LaTeX booktabs), crops and an offline HTML page."""
    from lic.eval.report import write_report

    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder")
    written = write_report(results, output, anchor, images, crop_image, tuple(crop_codec), crop_quality, crop_size,
                           tuple(codec))
    typer.echo(f"wrote {len(written)} files in {output}; open {output / 'index.html'}")
