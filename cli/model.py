"""`lic export` and `lic quantize`: turn trained float weights into a model file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

from lic.cli.app import app, user_errors
from lic.errors import InputError

_WEIGHTS_HELP = ("Float weights of a hyperprior: a run's weights.safetensors or checkpoint.pt, or a state dict "
                 "whose conv weights are int8 with a '<name>.qscale' (as in ../shared/weights).")
_CALIBRATION_HELP = ("Training images (a folder or .tar file; repeat for several) whose crops calibrate the "
                     "integer h_s and the sensitivities.")


def _parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)B?\s*", text)
    if not match:
        raise typer.BadParameter("a size such as 5MB, 5.6MB or 3500KB (1 MB = 10^6 bytes)", param_hint="--size-budget")
    return int(float(match.group(1)) * {"": 1, "k": 10**3, "m": 10**6}[match.group(2).lower()])


def _parse_bits(text: str) -> dict[str, int] | None:
    """'auto' -> None; '6' -> every layer; 'g_a.0=8,g_s.2=6' -> those layers (others 8)."""
    from lic.codecs import registry
    from lic.weights import SUPPORTED_BITS

    layers = registry.family("hyperprior").quantizable_layers()
    if text == "auto":
        return None
    try:
        if text.isdigit():
            bits = dict.fromkeys(layers, int(text))
        else:
            bits = {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise typer.BadParameter("auto, one width (e.g. 6) or LAYER=BITS pairs (e.g. g_a.0=8,g_s.2=6)",
                                 param_hint="--bits") from None
    unknown = sorted(set(bits) - set(layers))
    if unknown:
        raise typer.BadParameter(f"unknown layer {unknown[0]} (layers: {', '.join(layers)})", param_hint="--bits")
    if any(b not in SUPPORTED_BITS for b in bits.values()):
        raise typer.BadParameter(f"widths must be in {SUPPORTED_BITS}", param_hint="--bits")
    return bits


def _load(weights: Path, quality: int, calibration: list[Path], name: str | None, family: str):
    """The float model of `family` (its export module, from the registry), its model-file
    config and the training images for calibration."""
    from lic.codecs import registry
    from lic.train.common import load_weights
    from lic.train.data import load_images

    exporter = registry.family(family).exporter()
    try:
        model, config = exporter.float_model(load_weights(weights), quality, name or family)
    except InputError as e:
        raise InputError(f"{weights}: {e}") from None
    images, _ = load_images(calibration, exporter.CALIBRATION_SIDE)
    return exporter, model, config, images


def _check_output(output: Path, force: bool, inputs: list[Path]) -> None:
    from lic.files import check_writable

    if any(output.resolve() == p.resolve() for p in inputs if p.exists()):
        raise InputError(f"{output}: is one of the inputs")
    check_writable(output, force)


@app.command(
    name="export",
    epilog=("Example:\n\n  lic export runs/q4/weights.safetensors -q 4 --calibration pack-a.tar "
            "--calibration pack-b.tar -o q4.safetensors\n\n"
            "The model file has float16 transforms; `lic quantize` makes a smaller one."),
)
@user_errors
def export_command(
    weights: Path = typer.Argument(..., help=_WEIGHTS_HELP),
    calibration: list[Path] = typer.Option(..., "--calibration", help=_CALIBRATION_HELP),
    quality: int = typer.Option(..., "--quality", "-q", min=1, max=8, help="The quality these weights were trained for."),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.safetensors)."),
    name: Optional[str] = typer.Option(None, help="Model name recorded in the file (what --model and lic eval call it; default: the family)."),
    family: str = typer.Option("hyperprior", "--model", help="Codec family of the weights (one with an export in lic.codecs.registry)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
) -> None:
    """Export float weights as a model file (hyperprior: float16 transforms, integer h_s)."""
    from lic.models import save_model_file

    _check_output(output, force, [weights])
    exporter, model, config, images = _load(weights, quality, calibration, name, family)
    saved = save_model_file(output, exporter.export_model(model, images), config)
    typer.echo(f"{weights} -> {output}: {output.stat().st_size / 1e6:.2f} MB, hash {saved.hash.hex()}")


@app.command(
    epilog=("Examples:\n\n  lic quantize W.safetensors -q 4 --calibration pack-a.tar --calibration pack-b.tar --size-budget 5MB -o q4.safetensors\n\n"
            "  lic quantize W.safetensors -q 4 --calibration pack-a.tar --bits g_a.0=8,g_s.2=6 -o q4.safetensors\n\n"
            "Prints the per-layer table: both sensitivity measures, the chosen widths, sizes, and the\n"
            "rate-distortion change on the calibration crops."),
)
@user_errors
def quantize(
    weights: Path = typer.Argument(..., help=_WEIGHTS_HELP),
    calibration: list[Path] = typer.Option(..., "--calibration", help=_CALIBRATION_HELP),
    quality: int = typer.Option(..., "--quality", "-q", min=1, max=8, help="The quality these weights were trained for."),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.safetensors)."),
    size_budget: Optional[str] = typer.Option(None, help="Largest model file, e.g. 5MB (with --bits auto)."),
    bits: str = typer.Option("auto", help="auto (needs --size-budget), one width for all layers, or LAYER=BITS,..."),
    fix: Optional[str] = typer.Option(None, help="With --bits auto: LAYER=BITS,... kept at these widths, not allocated."),
    hessian_samples: int = typer.Option(8, min=1, help="Hutchinson samples for the Hessian traces."),
    report: Optional[Path] = typer.Option(None, help="Also write the measurements as JSON here."),
    name: str = typer.Option("hyperprior", help="Model name recorded in the file (what --model and lic eval call it)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
) -> None:
    """Mixed-precision weights: per-layer widths from measured sensitivity under a size budget."""
    from lic.export.hyperprior import calibration_batch, export, transform_moments
    from lic.export.mixed_precision import plan
    from lic.models import save_model_file

    chosen = _parse_bits(bits)
    fixed = _parse_bits(fix) if fix else None
    budget = _parse_size(size_budget) if size_budget else None
    if chosen is None and budget is None:
        raise typer.BadParameter("--bits auto needs --size-budget", param_hint="--size-budget")
    _check_output(output, force, [weights])
    if report is not None:
        _check_output(report, force, [weights])
    _, model, config, images = _load(weights, quality, calibration, name, "hyperprior")
    # Three disjoint crop sets of training photos (given 3 or more): GPTQ statistics (also
    # h_s's ranges), the measured RD change, the Hessian traces.
    fit = calibration_batch(images, count=8, side=256)
    crops = calibration_batch(images[1:] or images, count=8, side=256)
    typer.echo(f"collecting GPTQ input statistics on {fit.shape[0]} crops", err=True)
    moments = transform_moments(model, fit)
    result = plan(model, config["lambda"], crops, calibration_batch(images[2:] or images, count=4, side=128), moments, fit,
                  budget, chosen, hessian_samples, fixed, log=lambda line: typer.echo(line, err=True))
    config["weight_bits"] = result.bits
    saved = save_model_file(output, export(model, fit, result.bits, moments), config)
    typer.echo(_table(result))
    size = output.stat().st_size
    joint = result.joint
    typer.echo(f"\n{output}: {size:,} bytes ({size / 1e6:.2f} MB), hash {saved.hash.hex()}")
    typer.echo(f"calibration crops, float -> quantized: {joint['bpp_float']:.4f} -> {joint['bpp_quantized']:.4f} bpp, "
               f"{joint['psnr_float']:.3f} -> {joint['psnr_quantized']:.3f} dB PSNR, "
               f"RD loss {joint['loss_float']:.4f} -> {joint['loss_quantized']:.4f}")
    if result.measured:
        typer.echo(f"rank agreement of the two sensitivities at 4 bits (Spearman): {result.rank_agreement():.2f}")
    if report is not None:
        from lic.files import atomic_write

        atomic_write(report, (json.dumps({"config": config, **result.to_json()}, indent=1) + "\n").encode(), force)


def _table(result) -> str:
    from lic.export.mixed_precision import MENU

    widths = MENU[1:]
    rows = [f"{'layer':<7}{'params':>10}{'bits':>5}{'bytes':>11}  " + "".join(f"{f'ΔRD@{b}':>9}" for b in widths)
            + f"  {'HAWQ@6':>9}{'HAWQ@4':>9}"]
    for layer, b in result.bits.items():
        m, h = result.measured.get(layer, {}), result.hawq.get(layer, {})
        cell = lambda d, k: f"{d[k]:>9.5f}" if k in d else f"{'-':>9}"  # noqa: E731
        rows.append(f"{layer:<7}{result.params[layer]:>10,}{b:>5}{result.bytes[layer]:>11,}  "
                    + "".join(cell(m, w) for w in widths) + f"  {cell(h, 6)}{cell(h, 4)}")
    return "\n".join(rows)
