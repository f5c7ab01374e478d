"""`lic encode`, `lic decode`, `lic info`, `lic models`: the everyday commands."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from PIL import Image
from tqdm import tqdm

from lic.cli.app import app, expand_inputs, fail, user_errors
from lic.cli.video import VIDEO_SUFFIXES
from lic.errors import InputError, LicError

_DEVICE_HELP = ("cpu, cuda or cuda:N. Both codecs decode with exact integer entropy models and float64 "
                "synthesis on every device (unless --fast), so decoded pixels are the same on CPU and GPU.")
_FAST_HELP = ("Images: run the hyperprior's synthesis in float32, several times faster; a few pixel values per "
              "million differ from the exact decode by one grey level, and may differ between machines. "
              "Clips always decode exactly.")
_JOBS_HELP = ("Several inputs: code them in this many processes at once (each loads the model once and "
              "uses cores/N threads). Outputs are the same as with -j 1.")
_EFFORT_HELP = ("Images: 0 (default) codes g_a's latents; 1..3 spend more time optimising them for this image "
                "(smaller files at the same quality; any decoder reads them). --device cuda runs it on a GPU.")
_MAX_PIXELS_HELP = "Refuse images with more pixels than this (default: lic.api.MAX_PIXELS, about 134 million)."


def _outputs(files: list[Path], out: Optional[Path], suffix: str, file_suffixes: set[str]) -> list[Path]:
    """One output per input: next to it by default, inside `out` if it is (or must be) a folder.

    A new folder is not made under a name with one of `file_suffixes` (`-o one.lic` for two
    inputs): that name asks for a file, and a folder called `one.lic` surprises everyone."""
    if out is None:
        return [f.with_name(f.stem + suffix) for f in files]
    if len(files) > 1 or out.is_dir():
        if out.exists() and not out.is_dir():
            raise InputError(f"{out}: several inputs need -o to be a folder")
        if not out.exists() and out.suffix.lower() in file_suffixes:
            raise InputError(f"{out}: names a {out.suffix} file, but {len(files)} inputs need -o to be a folder")
        out.mkdir(parents=True, exist_ok=True)
        return [out / (f.stem + suffix) for f in files]
    return [out]


def _lic_kind(path: Path) -> str | None:
    """'clip', 'image', or None for a file that is no .lic file at all (by its magic bytes)."""
    from lic.bitstream import MAGIC
    from lic.video.container import is_video

    with open(path, "rb") as f:
        magic = f.read(4)
    return "clip" if is_video(magic) else "image" if magic == MAGIC else None


def _run_batch(pairs: list[tuple[Path, Path]], work, what: str, jobs: int = 1) -> None:
    """Runs `work(src, dst)` for each pair with a progress bar when there are several, in
    `jobs` worker processes when asked (`in_workers`); a failing file is reported on one line
    and the rest still run."""
    if len(pairs) == 1:
        typer.echo(work(*pairs[0]))
        return
    failures = 0
    bar = tqdm(total=len(pairs), desc=what, unit="file", file=sys.stderr)
    results = in_workers(pairs, work, jobs) if jobs > 1 else ((src, _attempt(work, src, dst)) for src, dst in pairs)
    for src, (ok, line) in results:
        bar.update()
        if not ok:
            failures += 1
            line = f"lic: error: {src}: {line}"
        bar.write(line, file=sys.stderr if not ok else None)
    bar.close()
    if failures:
        raise fail(f"{failures} of {len(pairs)} files failed")


def _attempt(work, src: Path, dst: Path) -> tuple[bool, str]:
    """(True, the report line) or (False, the message of the user error that stopped it)."""
    try:
        return True, work(src, dst)
    except LicError as e:
        return False, str(e)


_BATCH: tuple = ()  # (work, pairs) of the batch the worker processes run, inherited when they fork


def _batch_item(i: int) -> tuple[bool, str]:
    work, pairs = _BATCH
    return _attempt(work, *pairs[i])


def _worker_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def in_workers(pairs: list[tuple[Path, Path]], work, jobs: int):
    """(src, result) of each pair, as they finish, from `jobs` forked processes. Each loads a
    model once (the loader caches it) and runs cores/jobs threads. Forked workers (as PyTorch's
    own DataLoader uses) inherit `work` as it is, closure included: nothing is pickled but the
    index of the pair and the result line."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    global _BATCH
    _BATCH = (work, pairs)
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_threads, initargs=(threads,))
    try:
        futures = {pool.submit(_batch_item, i): src for i, (src, _) in enumerate(pairs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:  # an error that is not a file's own (or ^C) stops the files not yet started
        pool.shutdown(cancel_futures=True)
        _BATCH = ()


def _rate_target(bpp: Optional[float], psnr_db: Optional[float], nbytes: Optional[int], effort: int):
    """The one rate or quality target asked for (a `lic.rate.Target`), or None."""
    given = [(kind, v) for kind, v in (("bpp", bpp), ("psnr", psnr_db), ("bytes", nbytes)) if v is not None]
    if len(given) > 1:
        raise InputError("give one of --target-bpp, --target-psnr and --max-bytes")
    if given and effort:
        raise InputError("--effort and rate targets cannot be combined yet")
    if not given:
        return None
    from lic.rate import Target

    if not given[0][1] > 0:
        raise InputError(f"--target-{given[0][0]} must be positive" if given[0][0] != "bytes" else "--max-bytes must be positive")
    return Target(*given[0])


@contextmanager
def _effort_bar(effort: int, src: Path) -> Iterator[Optional[Callable]]:
    """A progress bar with the running rate and PSNR while an image's latents are refined."""
    if not effort:
        yield None
        return
    bar = tqdm(desc=f"{src.name} effort {effort}", unit="step", file=sys.stderr, leave=False)

    def progress(step) -> None:
        bar.total = step.total
        bar.update(step.step - bar.n)
        bar.set_postfix_str(f"{step.bpp:.4f} bpp, {step.psnr:.2f} dB")

    try:
        yield progress
    finally:
        bar.close()


def image_suffixes() -> set[str]:
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lic encode photo.png -q 3                 # writes photo.lic\n\n"
        "  lic encode photo.png -q 6 -o best.lic --force\n\n"
        "  lic encode shots/ -q 2 -o coded/          # every image in shots/\n\n"
        "  lic encode clip.mp4 -q 3 -o clip.lic      # a clip (I- and P-frames)\n\n"
        "  lic encode frames/ --video --fps 50       # a folder of numbered frames as one clip"
    )
)
@user_errors
def encode(
    inputs: list[Path] = typer.Argument(..., help="Images (PNG, JPEG, ...), folders of images, or video clips (mp4, mkv, y4m, ...)."),
    quality: int = typer.Option(3, "--quality", "-q", help="Quality level (see `lic models`)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file, or folder for several inputs."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo model name or path to a .safetensors model (default: hyperprior for images, video for clips)."),
    device: str = typer.Option("cpu", help=_DEVICE_HELP),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    verify: bool = typer.Option(True, help="Images: decode the result and report its PSNR."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help=_MAX_PIXELS_HELP),
    video: bool = typer.Option(False, "--video", help="Code each input as one clip: a video file, or a folder of numbered frames."),
    fps: Optional[float] = typer.Option(None, "--fps", min=0.001, help="Clips from frame folders: frames per second (default 25)."),
    gop: int = typer.Option(32, "--gop", min=1, max=65535, help="Clips: an I-frame (random-access point) every this many frames."),
    intra_only: bool = typer.Option(False, "--intra-only", help="Clips: code every frame as an I-frame."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Clips: code at most this many frames."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=256, help=_JOBS_HELP),
    effort: int = typer.Option(0, "--effort", "-e", min=0, max=3, help=_EFFORT_HELP),
    target_bpp: Optional[float] = typer.Option(None, "--target-bpp", min=0.0, help="Images: land within ±1.5 % of this many bits per pixel (picks the quality and a step between models; -q is ignored)."),
    target_psnr: Optional[float] = typer.Option(None, "--target-psnr", min=0.0, help="Images: the smallest file whose RGB PSNR reaches this many dB."),
    max_bytes: Optional[int] = typer.Option(None, "--max-bytes", min=1, help="Images: the best file of at most this many bytes."),
) -> None:
    """Compress images and clips into .lic files."""
    import lic
    from lic.cli.video import encode_clip, is_clip_source
    from lic.eval.metrics import psnr
    from lic.files import atomic_write, check_outputs
    from lic.imageio import load_image

    target = _rate_target(target_bpp, target_psnr, max_bytes, effort)
    clip_folders = [p for p in inputs if video and p.is_dir()]
    others = [p for p in inputs if p not in clip_folders]
    files = clip_folders + (expand_inputs(others, image_suffixes() | VIDEO_SUFFIXES) if others else [])
    outputs = _outputs(files, output, ".lic", {".lic"} | image_suffixes() | VIDEO_SUFFIXES)
    check_outputs(files, outputs, force)
    for dst in outputs:
        if dst.suffix.lower() not in ("", ".lic"):
            raise InputError(f"{dst}: lic encode writes .lic files, not {dst.suffix} (name the output *.lic)")

    def work(src: Path, dst: Path) -> str:
        if is_clip_source(src, video):
            if target is not None or effort:
                raise InputError(f"{src}: --effort and rate targets are for images, not clips")
            return encode_clip(src, dst, quality=quality, model=model, fps=fps, gop=gop, intra_only=intra_only,
                               max_frames=max_frames, device=device, force=force, max_pixels=max_pixels)
        source = load_image(src)
        t0 = time.perf_counter()
        chosen = ""
        if target is not None:
            from lic.rate import compress_to

            data, choice = compress_to(source, target, model=model or "hyperprior", device=device, max_pixels=max_pixels)
            chosen = f" (quality {choice.quality}, step {choice.step})"
        else:
            with _effort_bar(effort, src) as progress:
                data = lic.compress(source, quality=quality, model=model or "hyperprior", device=device,
                                    max_pixels=max_pixels, effort=effort, progress=progress)
        t_enc = time.perf_counter() - t0
        atomic_write(dst, data, force)
        bpp = 8 * len(data) / (source.width * source.height)
        line = f"{src} -> {dst}: {len(data):,} bytes, {bpp:.4f} bpp{chosen}, encode {t_enc:.2f} s"
        if verify:
            t0 = time.perf_counter()
            decoded = load_image(lic.decompress(data, model=model or "hyperprior", device=device, max_pixels=max_pixels))
            t_dec = time.perf_counter() - t0
            line += f", decode {t_dec:.2f} s, PSNR {psnr(source.rgb, decoded.rgb):.2f} dB"
        return line

    _run_batch(list(zip(files, outputs)), work, "encode", jobs)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lic decode photo.lic                      # writes photo.decoded.png\n\n"
        "  lic decode photo.lic -o photo.jpg --force\n\n"
        "  lic decode coded/ -o decoded/\n\n"
        "  lic decode clip.lic -o clip.mkv           # lossless RGB (FFV1); .mp4 or a folder of PNGs too (not .y4m)"
    )
)
@user_errors
def decode(
    inputs: list[Path] = typer.Argument(..., help=".lic files or folders of them."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output image (format from its suffix), clip (.mkv, .mp4 or a folder for PNG frames, all lossless RGB; .y4m cannot be), or folder."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model file, if it is not in the zoo."),
    device: str = typer.Option("cpu", help=_DEVICE_HELP),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help=_MAX_PIXELS_HELP),
    fast: bool = typer.Option(False, "--fast", help=_FAST_HELP),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=256, help=_JOBS_HELP),
) -> None:
    """Decompress .lic files into images."""
    import io

    import lic
    from lic.cli.video import check_clip_output, decode_clip
    from lic.files import atomic_write, check_outputs

    files = expand_inputs(inputs, {".lic"})
    kinds = {f: _lic_kind(f) for f in files}
    clips = {f for f in files if kinds[f] == "clip"}
    extensions = Image.registered_extensions()
    written = {ext for ext, fmt in extensions.items() if fmt in Image.SAVE} | {".mkv", ".mp4", ".lic"}
    outputs = [dst if src not in clips or output is not None else dst.with_name(src.stem + ".decoded.mkv")
               for src, dst in zip(files, _outputs(files, output, ".decoded.png", written))]
    for src, dst in zip(files, outputs):
        if kinds[src] is None:
            continue  # refused as "not a .lic file" when its turn comes (a batch goes on past it)
        if src in clips:
            check_clip_output(dst)
        elif extensions.get(dst.suffix.lower()) not in Image.SAVE:
            raise InputError(f"{dst}: cannot tell an image format from the suffix '{dst.suffix}'")
    check_outputs(files, outputs, force)

    def work(src: Path, dst: Path) -> str:
        if src in clips:
            return decode_clip(src, dst, model=model, device=device, force=force, max_pixels=max_pixels)
        if kinds[src] is None:
            raise InputError(f"{src}: not a .lic file (wrong magic bytes)")
        t0 = time.perf_counter()
        image = lic.decompress(src.read_bytes(), model=model, device=device, max_pixels=max_pixels, fast=fast)
        seconds = time.perf_counter() - t0
        buffer = io.BytesIO()
        try:
            image.save(buffer, format=extensions[dst.suffix.lower()])
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{dst}: cannot save a {image.mode} image in this format ({e})") from None
        atomic_write(dst, buffer.getvalue(), force)
        return f"{src} -> {dst}: {image.width}x{image.height} {image.mode}, decode {seconds:.2f} s"

    _run_batch(list(zip(files, outputs)), work, "decode", jobs)


@app.command(epilog="Example:\n\n  lic info photo.lic\n\n  lic info coded/*.lic --json")
@user_errors
def info(
    files: list[Path] = typer.Argument(..., help=".lic files."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file."),
) -> None:
    """Show what a .lic file holds: codec, model, quality, size, bits per pixel."""
    from lic import bitstream, models
    from lic.bitstream import FLAG_16BIT, FLAG_GREY
    from lic.cli.video import clip_info, is_clip_file

    for path in files:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if is_clip_file(path):
            record = clip_info(path)
            typer.echo(json.dumps(record) if as_json else "\n".join(f"{k:>18}: {v}" for k, v in record.items()) + "\n")
            continue
        data = path.read_bytes()
        header, _ = bitstream.unpack(data)
        model = models.find_by_hash(header.model_hash)
        record = {
            "file": str(path), "codec": header.codec_name, "quality": header.quality,
            "model": f"{model.name} q{header.quality}" if model else "not installed",
            "model_hash": header.model_hash.hex(), "width": header.width, "height": header.height,
            "greyscale": bool(header.flags & FLAG_GREY), "alpha": header.has_alpha,
            "source_16bit": bool(header.flags & FLAG_16BIT),
            "padding": [header.pad_bottom, header.pad_right], "quantisation_step": header.step, "bytes": len(data),
            "stream_bytes": header.stream_lengths,
            "bpp": round(8 * len(data) / (header.width * header.height), 5),
        }
        if as_json:
            typer.echo(json.dumps(record))
        else:
            typer.echo("\n".join(f"{k:>13}: {v}" for k, v in record.items()) + "\n")


@app.command(name="models", epilog="Example:\n\n  lic models")
@user_errors
def list_models() -> None:
    """List the models that ship with lic and their qualities, and the codec families."""
    from lic import models
    from lic.codecs import registry

    found = models.available()
    if not found:
        raise InputError("no models are installed")
    typer.echo(f"{'name':<14}{'quality':>8}  {'family':<11}{'lambda':>9}  {'size':>9}  {'hash':<9}weights")
    for m in found:
        lam = m.config.get("lambda")
        size = m.path.stat().st_size
        qualities = f"{m.qualities[0]}..{m.qualities[-1]}" if len(m.qualities) > 1 else str(m.quality)
        typer.echo(f"{m.name:<14}{qualities:>8}  {m.family:<11}{lam if lam is not None else '-':>9}  "
                   f"{size / 1e6:>7.2f}MB  {m.hash.hex():<9}{_weight_bits(m.config)}")
    typer.echo("\nfamilies: " + ", ".join(
        f.name + "".join(f" +{verb}" for verb, has in (("export", f.export), ("quantize", f.quantizable)) if has)
        for f in registry.families()))


def _weight_bits(config: dict) -> str:
    """'int8 x5, int6 x6, int4 x3' for mixed precision; 'float16' for float transforms."""
    bits = config.get("weight_bits")
    if not bits:
        return "float16"
    counts = {b: list(bits.values()).count(b) for b in sorted(set(bits.values()), reverse=True)}
    return ", ".join(f"int{b} x{n}" for b, n in counts.items())
