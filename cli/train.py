"""`lic train`: train a codec on a folder (or .tar) of images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lic.cli.app import app, user_errors


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lic train ../shared/data/train --out runs/q4 --quality 4 --val-dir ../shared/data/kodak\n\n"
        "  lic train pack-a.tar pack-b.tar --out runs/q3 --quality 3 --init runs/q4/checkpoint.pt\n\n"
        "Re-running the same command resumes from OUT/checkpoint.pt."
    )
)
@user_errors
def train(
    data: list[Path] = typer.Argument(..., help="Folders (searched recursively) or .tar files of training images."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoint, log, exported model.safetensors."),
    model: str = typer.Option("hyperprior", "--model", help="Codec family to train."),
    quality: int = typer.Option(3, "--quality", "-q", min=1, max=8, help="Quality index; sets lambda from the ladder."),
    lmbda: Optional[float] = typer.Option(None, "--lambda", help="Override the ladder's rate-distortion lambda."),
    metric: str = typer.Option("mse", help="Distortion: mse or ms-ssim."),
    n_channels: int = typer.Option(128, "--N", help="Hyperprior: channels of the transforms."),
    m_channels: int = typer.Option(192, "--M", help="Hyperprior: channels of the latent y."),
    steps: int = typer.Option(100_000, help="Total optimisation steps (across resumes)."),
    batch: int = typer.Option(8, help="Crops per step."),
    crop: int = typer.Option(256, help="Square crop side in pixels."),
    lr: float = typer.Option(1e-4, help="Adam learning rate (x0.1 for the last 10% of steps)."),
    val_dir: Optional[Path] = typer.Option(None, help="Validation images (e.g. Kodak), coded for real."),
    val_images: int = typer.Option(4, help="How many validation images to use."),
    val_every: int = typer.Option(1000, help="Validate every this many steps (0: only at the end)."),
    save_every: int = typer.Option(500, help="Checkpoint every this many steps."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop (resumably) after this many minutes."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    amp: bool = typer.Option(True, help="bf16 autocast on CUDA."),
    init: Optional[Path] = typer.Option(None, help="Start from this checkpoint (fine-tune a neighbour quality)."),
    name: str = typer.Option("hyperprior", help="Model name recorded in the exported file."),
) -> None:
    """Train a codec; exports OUT/model.safetensors and OUT/run.json when done."""
    if model != "hyperprior":
        raise typer.BadParameter(f"unknown model family '{model}'", param_hint="--model")
    if metric not in ("mse", "ms-ssim"):
        raise typer.BadParameter("must be mse or ms-ssim", param_hint="--metric")
    from lic.train.hyperprior import HyperpriorTrainConfig, train as run

    summary = run(HyperpriorTrainConfig(
        data=[str(d) for d in data], out=str(out), quality=quality, lmbda=lmbda, metric=metric,
        N=n_channels, M=m_channels, steps=steps, batch=batch, crop=crop, lr=lr,
        val_dir=str(val_dir) if val_dir else None, val_images=val_images, val_every=val_every,
        save_every=save_every, max_minutes=max_minutes, seed=seed, device=device, amp=amp,
        init=str(init) if init else None, name=name,
    ))
    v = summary.get("validation")
    typer.echo(f"{summary['steps_done']} steps in {summary['wall_seconds']:.0f} s "
               f"({summary['images_per_second']} images/s) -> {out / 'model.safetensors'}")
    if v:
        typer.echo(f"validation: {v['bpp']:.4f} bpp, {v['psnr']:.2f} dB PSNR, MS-SSIM {v['ms_ssim']:.4f}")
