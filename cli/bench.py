"""`lic bench`: how fast lic and the classic codecs code images on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lic.cli.app import app, expand_inputs, user_errors
from lic.errors import InputError


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise InputError(f"{what} must be positive integers separated by commas, not '{text}'")
    return values


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lic bench                                  # the sample images, every quality\n\n"
        "  lic bench photos/ -q 1,4,8 --threads 1,2\n\n"
        "  lic bench kodak/ -q 1,4,8 --threads 1 --against-compressai"
    )
)
@user_errors
def bench(
    images: Optional[list[Path]] = typer.Argument(None, help="Images or folders (default: the sample images)."),
    qualities: str = typer.Option("1,2,3,4,5,6,7,8", "--qualities", "-q", help="Hyperprior qualities, comma-separated."),
    threads: Optional[str] = typer.Option(None, help="Thread counts, comma-separated (default: 1 and all cores)."),
    rounds: int = typer.Option(3, min=1, max=100, help="Rounds per measurement; the median is reported."),
    baselines_at: int = typer.Option(3, "--baselines-at", min=1, max=8, help="WebP/AVIF/JXL at the rate of this quality."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Time lic only."),
    against_compressai: bool = typer.Option(False, "--against-compressai",
                                            help="Instead: lic's encode/decode time over CompressAI's MeanScaleHyperprior(128, 192)."),
    deviation: bool = typer.Option(False, "--deviation",
                                   help="Instead: how far --fast decodes are from exact decodes (pixel values, PSNR)."),
    device: str = typer.Option("cpu", help="Where lic runs: cpu, cuda or cuda:N (the classic codecs run on the CPU)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per row."),
) -> None:
    """Encode and decode speed (megapixels per second) of each shipped model, exact and --fast,
    and of WebP, AVIF and JPEG XL at a similar rate: one thread and all threads."""
    import torch

    from lic.cli.codec import image_suffixes
    from lic.codecs.base import to_device
    from lic.eval import speed

    device = str(to_device(device))
    paths = expand_inputs(images or [Path(__file__).resolve().parents[1] / "samples"], image_suffixes(), "images")
    qs = _int_list(qualities, "--qualities")
    if max(qs) > 8:
        raise InputError("--qualities: the hyperprior has qualities 1 to 8")
    counts = _int_list(threads, "--threads") if threads else sorted({1, torch.get_num_threads()})
    if deviation:
        for row in speed.fast_deviation(paths, qs):
            typer.echo(json.dumps(row) if as_json else
                       f"q{row['quality']}: {row['images']} images, {row['differing_fraction']:.2e} of pixel values "
                       f"differ (at most by {row['max_difference']}), PSNR {row['psnr_exact']:.4f} dB exact, "
                       f"{row['psnr_fast']:.4f} dB fast")
        return
    if against_compressai:
        torch.set_num_threads(counts[0])
        for row in speed.against_compressai(paths, qs, rounds):
            seconds = row.pop("seconds")
            typer.echo(json.dumps({**row, "seconds": seconds}) if as_json else
                       f"q{row['quality']}: {row['images']} images, {row['threads']} thread(s), median of {rounds}: "
                       f"encode {row['encode']:.2f}x, decode {row['decode']:.2f}x, decode --fast "
                       f"{row['decode --fast']:.2f}x CompressAI's time")
        return
    rows = speed.bench(paths, qs, counts, rounds, None if no_baselines else baselines_at, device)
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r.__dict__))
        return
    typer.echo(f"{len(paths)} images, lic on {device}, median of {rounds} rounds, megapixels per second")
    typer.echo(f"{'codec':<22}{'threads':>8}{'bpp':>8}{'encode':>9}{'decode':>9}{'--fast':>9}")
    for r in rows:
        fast = f"{r.fast_decode_mps:>9.2f}" if r.fast_decode_mps is not None else f"{'-':>9}"
        typer.echo(f"{r.codec:<22}{r.threads:>8}{r.bpp:>8.3f}{r.encode_mps:>9.2f}{r.decode_mps:>9.2f}{fast}")
