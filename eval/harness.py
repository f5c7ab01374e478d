"""The evaluation loop: every codec at every quality on every image, one CSV row each.

Rows are appended to the folder's CSV as they finish, so an interrupted run loses at most the
rows in flight, and the next run over the same folder skips every row already there. A row of
another lic model is redone. A row that lacks a metric now asked for (say ColorVideoVDP, or JOD
on another display) is *completed*: the image is coded again (decoded images are not kept),
and if the file has the same bytes as the row's, only the missing metrics are measured and
the row keeps its times and other values; a file of other bytes redoes the whole row.
Classic codecs can run in worker processes; lic models run in this process, one at a time,
so their timings are not disturbed by workers. Everything runs single-threaded (encoders,
lic models on the CPU, metrics): timings compare across codecs, and on a busy machine torch's
thread pool would only oversubscribe the cores (MS-SSIM ran 8x slower that way).
"""

from __future__ import annotations

import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from lic.errors import InputError, LicError
from lic.eval import cvvdp, metrics, perceptual
from lic.eval.baselines import BASELINES
from lic.eval.codecs import Codec, LicCodec
from lic.eval.results import DISPLAY_COLUMN, ROWS_FILE, Row, journal, make_curve, read_rows, row_key, write_json
from lic.imageio import load_image


@dataclass(frozen=True)
class MetricSet:
    """Which metrics to measure beyond PSNR, Y-PSNR and MS-SSIM (picklable, for workers)."""

    lpips: bool = False  # only when the backbone is available (or random_backbone)
    random_backbone: bool = False  # tests only: an untrained LPIPS backbone
    weight_free: tuple[str, ...] = ()  # keys of perceptual.WEIGHT_FREE
    display: str | None = None  # ColorVideoVDP on this display model (lic.eval.cvvdp); None: not measured

    @property
    def optional(self) -> tuple[str, ...]:
        return (("lpips",) if self.lpips else ()) + self.weight_free + (("cvvdp",) if self.display else ())

    def missing(self, row: Row | None) -> tuple[str, ...]:
        """The metrics of this set that `row` lacks (all of them for no row); JOD measured on
        another display counts as missing."""
        wanted = ("psnr-rgb", "psnr-y", "ms-ssim-rgb", *self.optional)
        if row is None:
            return wanted
        return tuple(m for m in wanted if row[m] is None or (m == "cvvdp" and row[DISPLAY_COLUMN] != self.display))


class Meter:
    """Measures decoded images against originals with the metrics of a MetricSet."""

    def __init__(self, wanted: MetricSet) -> None:
        self.wanted = wanted
        self.lpips = perceptual.load_lpips(random_backbone=wanted.random_backbone) if wanted.lpips else None
        self.cvvdp = cvvdp.load(wanted.display) if wanted.display else None

    def __call__(self, original: np.ndarray, decoded: np.ndarray, only: tuple[str, ...] | None = None) -> Row:
        """Values rounded for the CSV (NaN marks a metric undefined for this image size), of
        the metrics in `only` (default: all of the set's)."""
        nan = math.nan
        measures = {
            "psnr-rgb": lambda: round(metrics.psnr(original, decoded), 4),
            "psnr-y": lambda: round(metrics.y_psnr(original, decoded), 4),
            "ms-ssim-rgb": lambda: round(metrics.ms_ssim(original, decoded), 6) if min(original.shape[:2]) > 160 else nan,
        }
        if self.lpips is not None:
            measures["lpips"] = lambda: _or_nan(self.lpips(original, decoded))
        for name in self.wanted.weight_free:
            measures[name] = lambda name=name: _or_nan(perceptual.WEIGHT_FREE[name](original, decoded))
        if self.cvvdp is not None:
            measures["cvvdp"] = lambda: round(self.cvvdp.image(original, decoded), 6)
        values: Row = {name: measure() for name, measure in measures.items() if only is None or name in only}
        if "cvvdp" in values:
            values[DISPLAY_COLUMN] = self.wanted.display
        return values


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else round(value, 6)


def model_hash(codec: Codec, quality: int) -> str:
    return codec.model_file(quality).hash.hex() if isinstance(codec, LicCodec) else ""


def measure(codec: Codec, quality: int, image: Path, meter: Meter, earlier: Row | None = None) -> Row:
    """Encodes, decodes and measures one image at one quality: one CSV row. With an `earlier`
    row of the same file (same bytes), only the metrics it lacks are measured into a copy of it."""
    original = load_image(image).rgb
    start = time.perf_counter()
    data = codec.encode(original, quality)
    encoded = time.perf_counter()
    decoded = codec.decode(data)
    seconds_dec = time.perf_counter() - encoded
    if decoded.shape != original.shape or decoded.dtype != np.uint8:
        raise LicError(f"{codec.name} q{quality} decoded {image.name} to {decoded.shape}, not {original.shape}")
    if earlier is not None and earlier["bytes"] == len(data):
        return {**earlier, **meter(original, decoded, only=meter.wanted.missing(earlier))}
    height, width = original.shape[:2]
    row = {c: None for c in ("lpips", *perceptual.WEIGHT_FREE, "cvvdp")}
    row[DISPLAY_COLUMN] = ""
    row.update(
        codec=codec.name, model_hash=model_hash(codec, quality), quality=quality, image=image.name,
        width=width, height=height, bytes=len(data), bpp=round(8 * len(data) / (width * height), 6),
        encoding_time=round(encoded - start, 4), decoding_time=round(seconds_dec, 4),
    )
    row.update(meter(original, decoded))
    return row


_worker_meter: Meter | None = None


def _start_worker(wanted: MetricSet) -> None:
    global _worker_meter
    torch.set_num_threads(1)  # the parallelism is over processes
    _worker_meter = Meter(wanted)


def _work(codec: str, quality: int, image: Path, earlier: Row | None) -> Row:
    return measure(BASELINES[codec], quality, image, _worker_meter, earlier)


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in readable)
    if not images:
        # Datasets often unpack into one more level (clic/professional_valid/...): say where.
        nested = sorted(d.name for d in folder.iterdir() if d.is_dir() and any(
            f.is_file() and f.suffix.lower() in readable for f in d.iterdir()))
        hint = f" (subfolders are not searched; images are in {', '.join(nested)})" if nested else ""
        raise InputError(f"{folder}: no images in this folder{hint}")
    return images


def _current(row: Row, codec: Codec) -> bool:
    """The row is of a quality the codec still has, made by the same lic model."""
    return row["quality"] in codec.qualities and row["model_hash"] == model_hash(codec, row["quality"])


def evaluate(
    dataset: Path,
    codecs: list[Codec],
    out: Path,
    wanted: MetricSet,
    workers: int = 1,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Runs what is missing in `out` and writes its CSV and one JSON per codec; returns the JSONs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _evaluate(dataset, codecs, out, wanted, workers, force, log)
    finally:
        torch.set_num_threads(threads)


def _existing_rows(out: Path, codecs: list[Codec], force: bool) -> dict[tuple, Row]:
    """The rows already in `out` worth keeping, by key; refuses to overwrite foreign curves."""
    rows_path = out / ROWS_FILE
    kept = read_rows(rows_path) if rows_path.exists() else []
    for codec in codecs:
        curve_path = out / f"{codec.name}.json"
        if curve_path.exists() and not force and not any(r["codec"] == codec.name for r in kept):
            raise InputError(f"{curve_path}: already exists and is not from this folder's rows (use --force)")
    if force:
        kept = [r for r in kept if r["codec"] not in {c.name for c in codecs}]
    return {row_key(r): r for r in kept}  # a row redone by an earlier run replaces its first try


Job = tuple[Codec, int, Path, Row | None]  # codec, quality, image, the row to complete (if any)


def _run(jobs: list[Job], wanted: MetricSet, workers: int, record: Callable[[Row], None]) -> None:
    """Measures the jobs: classic codecs in `workers` processes (if over 1), the rest here."""
    parallel = [j for j in jobs if workers > 1 and j[0].name in BASELINES]
    local = [j for j in jobs if not (workers > 1 and j[0].name in BASELINES)]
    if parallel:
        # A fork server imports lic (and torch) once and forks the workers from that clean
        # process: no re-import per worker as with spawn, no inherited threads as with fork.
        context = get_context("forkserver")
        metric_modules = ((["piq"] if wanted.weight_free else []) + (["lpips"] if wanted.lpips else [])
                          + (["pycvvdp"] if wanted.display else []))
        context.set_forkserver_preload([__name__, *metric_modules])
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(wanted,)) as pool:
            futures = [pool.submit(_work, c.name, q, p, r) for c, q, p, r in parallel]
            try:
                for future in as_completed(futures):
                    record(future.result())
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    meter = Meter(wanted) if local else None
    prepared = None
    for codec, quality, image, earlier in local:
        if prepared != (codec.name, quality):
            codec.prepare(quality)  # untimed: loading a model is not encoding
            prepared = (codec.name, quality)
        record(measure(codec, quality, image, meter, earlier))


def _evaluate(dataset: Path, codecs: list[Codec], out: Path, wanted: MetricSet, workers: int, force: bool,
              log: Callable[[str], None]) -> list[Path]:
    images = list_images(dataset)
    by_name = {c.name: c for c in codecs}
    if len(by_name) < len(codecs):
        raise InputError("two of the codecs have the same name: evaluate them into different folders")
    out.mkdir(parents=True, exist_ok=True)
    latest = _existing_rows(out, codecs, force)
    image_names = {p.name for p in images}
    current = {k: r for k, r in latest.items() if k[0] in by_name and k[2] in image_names and _current(r, by_name[k[0]])}
    done = {k for k, r in current.items() if not wanted.missing(r)}
    jobs = [(c, q, p, current.get((c.name, q, p.name))) for c in codecs for q in c.qualities for p in images
            if (c.name, q, p.name) not in done]
    total = sum(len(c.qualities) for c in codecs) * len(images)
    rows_path = out / ROWS_FILE
    if done:
        log(f"resuming: {total - len(jobs)} of {total} rows are already in {rows_path}")
    with (
        journal(rows_path, latest) as write,
        tqdm(total=len(jobs), desc="eval", unit="row", file=sys.stderr, disable=not jobs) as bar,
    ):
        def record(row: Row) -> None:
            write(row)
            bar.update()

        _run(jobs, wanted, workers, record)
    written = []
    for codec in codecs:
        rows = [r for r in latest.values()
                if r["codec"] == codec.name and r["image"] in image_names and _current(r, codec)]
        path = out / f"{codec.name}.json"
        write_json(path, make_curve(codec.name, codec.description, dataset.name, codec.qualities, rows), force=True)
        written.append(path)
    log(f"wrote {rows_path} and {len(written)} curve(s) in {out}")
    return written
