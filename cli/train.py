"""`lic train`: train a codec on a folder (or .tar) of images."""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path
from typing import Optional

import typer

from lic.cli.app import app, user_errors
from lic.codecs import registry


#: Options that only some families take: parameter name -> (flag, field of the family's config).
_FAMILY_OPTIONS = {
    "quality": ("--quality", "quality"), "lmbda": ("--lambda", "lmbda"), "metric": ("--metric", "metric"),
    "n_channels": ("--N", "N"), "m_channels": ("--M", "M"),
    "channels": ("--channels", "channels"), "blocks": ("--blocks", "blocks"), "code_dim": ("--code-dim", "code_dim"),
    "codebook_size": ("--codebook-size", "codebook_size"), "levels": ("--levels", "levels"),
    "disc_start": ("--disc-start", "disc_start"), "disc_weight": ("--disc-weight", "disc_weight"),
    "feature_matching": ("--feature-matching", "feature_matching"), "lpips_weight": ("--lpips-weight", "lpips_weight"),
    "level_steps": ("--level-steps", "level_steps"), "stats_images": ("--stats-images", "stats_images"),
    "intra_quality": ("--intra-quality", "intra_quality"), "sequences": ("--sequences", "sequences"),
}


def _settings(items: list[str], config: type) -> dict:
    """`--set FIELD=VALUE` pairs for the family's training config: a family's own options
    without a flag of their own here (values read as Python literals, else as text)."""
    fields = {f.name for f in dataclasses.fields(config)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise typer.BadParameter(f"'{item}' is not FIELD=VALUE of {config.__name__} ({', '.join(sorted(fields))})",
                                     param_hint="--set")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter("must be comma-separated integers, e.g. 32,64,128,256", param_hint=flag) from None


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lic train ../shared/data/train --out runs/q4 --quality 4 --val-dir ../shared/data/kodak\n\n"
        "  lic train pack-a.tar pack-b.tar --out runs/q3 --quality 3 --init runs/q4/checkpoint.pt\n\n"
        "  lic train ../shared/data/train --model vq --out runs/vq --val-dir ../shared/data/kodak\n\n"
        "  lic train pack-a.tar pack-b.tar --model video --quality 2 --sequences vimeo/ --init q2.safetensors --out runs/v2\n\n"
        "Re-running the same command resumes from OUT/checkpoint.pt. Unset options take the\n"
        "family's defaults (HyperpriorTrainConfig, VQTrainConfig, VideoTrainConfig in lic.train)."
    )
)
@user_errors
def train(
    data: list[Path] = typer.Argument(..., help="Folders (searched recursively) or .tar files of training images."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoint, log, exported model.safetensors."),
    model: str = typer.Option("hyperprior", "--model", help="Codec family to train: hyperprior, vq or video."),
    quality: Optional[int] = typer.Option(None, "--quality", "-q", min=1, max=8, help="Hyperprior: quality index; sets lambda from the ladder (default 3)."),
    lmbda: Optional[float] = typer.Option(None, "--lambda", help="Hyperprior: override the ladder's rate-distortion lambda."),
    metric: Optional[str] = typer.Option(None, help="Hyperprior: distortion, mse (default) or ms-ssim."),
    n_channels: Optional[int] = typer.Option(None, "--N", help="Hyperprior: channels of the transforms (default 128)."),
    m_channels: Optional[int] = typer.Option(None, "--M", help="Hyperprior: channels of the latent y (default 192)."),
    init: Optional[Path] = typer.Option(None, help="Start from these weights (checkpoint.pt or weights.safetensors of a run)."),
    channels: Optional[str] = typer.Option(None, help="VQ: channels at 1/2,1/4,1/8,1/16 resolution (default 32,64,128,192)."),
    blocks: Optional[str] = typer.Option(None, help="VQ: residual blocks per resolution (default 1,1,1,1)."),
    code_dim: Optional[int] = typer.Option(None, help="VQ: dimension of the normalised codes (default 16)."),
    codebook_size: Optional[int] = typer.Option(None, help="VQ: codes in the full codebook (default 4096)."),
    levels: Optional[int] = typer.Option(None, min=1, max=8, help="VQ: rate levels; level L keeps 2**(L+4) codes (default 8)."),
    disc_start: Optional[int] = typer.Option(None, help="VQ: step at which the GAN losses start (default 15000)."),
    disc_weight: Optional[float] = typer.Option(None, help="VQ: weight of the balanced GAN loss (default 0.5)."),
    feature_matching: Optional[float] = typer.Option(None, help="VQ: weight of discriminator feature matching (default 1)."),
    lpips_weight: Optional[float] = typer.Option(None, help="VQ: LPIPS weight (default 0; needs VGG-16 weights in the torch cache)."),
    level_steps: Optional[int] = typer.Option(None, help="VQ: fine-tuning steps per reduced codebook (default 300)."),
    stats_images: Optional[int] = typer.Option(None, help="VQ: training images that fit the entropy model (default 0: all)."),
    intra_quality: Optional[int] = typer.Option(None, min=1, max=8, help="Video: image quality of the I-frames (default: --quality)."),
    sequences: Optional[Path] = typer.Option(None, help="Video: folder of real clips as frame folders (e.g. Vimeo septuplets), mixed with synthetic motion."),
    steps: Optional[int] = typer.Option(None, help="Total optimisation steps across resumes (default 100000 hyperprior, 40000 vq)."),
    batch: Optional[int] = typer.Option(None, help="Crops per step (default 8 hyperprior, 16 vq)."),
    crop: Optional[int] = typer.Option(None, help="Square crop side in pixels (default 256)."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate, x0.1 for the last 10% of steps (default 1e-4 hyperprior, 2e-4 vq)."),
    val_dir: Optional[Path] = typer.Option(None, help="Validation images (e.g. Kodak), coded for real."),
    val_images: int = typer.Option(4, help="How many validation images to use."),
    val_every: Optional[int] = typer.Option(None, help="Validate every this many steps (0: only at the end; default 1000 hyperprior, 2000 vq)."),
    save_every: int = typer.Option(500, help="Checkpoint every this many steps."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop (resumably) after this many minutes."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    amp: bool = typer.Option(True, help="bf16 autocast on CUDA."),
    name: Optional[str] = typer.Option(None, help="Model name recorded in the exported file (default: the family)."),
    ladder: Optional[str] = typer.Option(None, help="Hyperprior: train these qualities (e.g. 1-8 or 1,4,8) within --minutes; exports OUT/model/."),
    minutes: Optional[float] = typer.Option(None, help="With --ladder: the whole run, exports included, ends within this many minutes."),
    settings: list[str] = typer.Option([], "--set", help="FIELD=VALUE of the family's training config, for options without a flag here (repeatable)."),
    trunk_share: Optional[float] = typer.Option(None, help="With --ladder: share of the training time for the trunk (--quality, default 4) (default 0.3)."),
) -> None:
    """Train a codec; exports OUT/model.safetensors and OUT/run.json when done."""
    given = dict(locals())
    if model not in registry.names():
        raise typer.BadParameter(f"unknown model family '{model}' ({' or '.join(registry.names())})", param_hint="--model")
    Config, run = registry.family(model).trainer()
    fields = {f.name for f in dataclasses.fields(Config)}
    for key, (flag, field) in _FAMILY_OPTIONS.items():
        if given[key] is not None and field not in fields:
            takers = [f.name for f in registry.families() if field in {g.name for g in dataclasses.fields(f.trainer()[0])}]
            raise typer.BadParameter(f"applies to --model {' or '.join(takers)} only, not {model}", param_hint=flag)
    if metric is not None and metric not in ("mse", "ms-ssim"):
        raise typer.BadParameter("must be mse or ms-ssim", param_hint="--metric")
    common = {
        "data": [str(d) for d in data], "out": str(out), "steps": steps, "batch": batch, "crop": crop, "lr": lr,
        "val_dir": str(val_dir) if val_dir else None, "val_images": val_images, "val_every": val_every,
        "save_every": save_every, "max_minutes": max_minutes, "seed": seed, "device": device, "amp": amp, "name": name,
        "init": str(init) if init else None,
    }
    if ladder is not None:
        return _train_ladder(common, ladder, minutes, trunk_share, given)
    if minutes is not None or trunk_share is not None:
        raise typer.BadParameter("applies with --ladder only", param_hint="--minutes/--trunk-share")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not Config.data_parallel:
        takers = " or ".join(f.name for f in registry.families() if f.trainer()[0].data_parallel)
        raise typer.BadParameter(f"torchrun data parallelism trains --model {takers} only", param_hint="--model")
    specific = {field: given[key] for key, (_, field) in _FAMILY_OPTIONS.items()}
    specific["channels"] = _ints(channels, "--channels") if channels else None
    specific["blocks"] = _ints(blocks, "--blocks") if blocks else None
    specific["sequences"] = str(sequences) if sequences else None
    options = {k: v for k, v in {**common, **specific}.items() if v is not None}
    try:
        config = Config(**{**options, **_settings(settings, Config)})
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    summary = run(config)
    if summary.get("rank", 0) != 0:
        return  # rank 0 reports for the world
    if not summary["finished"]:
        phase = f" ({summary['phase']} phase)" if "phase" in summary else ""
        typer.echo(f"stopped at step {summary['steps_done']}{phase}; "
                   "run the same command again to resume")
        return
    typer.echo(f"{summary['steps_done']} steps in {summary['wall_seconds']:.0f} s "
               f"({summary['images_per_second']} images/s) -> {out / 'model.safetensors'}")
    v = summary.get("validation")
    if v and "levels" not in v:
        typer.echo(f"validation: {v['bpp']:.4f} bpp, {v['psnr']:.2f} dB PSNR, MS-SSIM {v['ms_ssim']:.4f}")
    elif v:
        for level, row in v["levels"].items():
            typer.echo(f"validation level {level} (K={row['K']}): {row['bpp']:.4f} bpp "
                       f"(log2(K)/256 = {row['nominal_bpp']:.4f}), {row['psnr']:.2f} dB PSNR, MS-SSIM {row['ms_ssim']:.4f}")


def _qualities(text: str) -> tuple[int, ...]:
    """'1-8' or '1,3,5' -> qualities, each 1..8."""
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-"))
            qualities = tuple(range(low, high + 1))
        else:
            qualities = tuple(int(v) for v in text.split(","))
    except ValueError:
        qualities = ()
    if not qualities or any(not 1 <= q <= 8 for q in qualities) or len(set(qualities)) < len(qualities):
        raise typer.BadParameter(f"'{text}': give qualities 1..8 as a range (1-8) or a list (1,4,8)", param_hint="--ladder")
    return qualities


def _train_ladder(common: dict, ladder: str, minutes: Optional[float], trunk_share: Optional[float], given: dict) -> None:
    from lic.train.ladder import LadderConfig, train_ladder

    if given["model"] != "hyperprior":
        raise typer.BadParameter("--ladder trains the hyperprior ladder", param_hint="--model")
    if minutes is None:
        raise typer.BadParameter("--ladder needs --minutes", param_hint="--minutes")
    for key, flag in (("lmbda", "--lambda"), ("steps", "--steps")):
        if given[key] is not None:
            raise typer.BadParameter("--ladder takes the ladder's lambdas and plans its own steps", param_hint=flag)
    specific = {"qualities": _qualities(ladder), "minutes": minutes, "trunk_share": trunk_share,
                "quality": given["quality"], "metric": given["metric"], "N": given["n_channels"], "M": given["m_channels"]}
    try:
        config = LadderConfig(**{k: v for k, v in {**common, **specific}.items() if v is not None})
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    summary = train_ladder(config)
    if summary["rank"] != 0:
        return
    if not summary["finished"]:
        typer.echo(f"stopped after {summary['wall_seconds']:.0f} s (--max-minutes); run the same command again to resume")
        return
    for phase in summary["phases"].values():
        typer.echo(f"{phase['phase']}: {phase['models']} model(s), {phase['seconds']:.0f} s, {phase['images_per_s']} images/s")
    typer.echo(f"{len(summary['exported'])} qualities in {summary['wall_seconds']:.0f} s "
               f"(budget {summary['minutes'] * 60:.0f} s) -> {Path(common['out']) / 'model'}")
