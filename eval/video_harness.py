"""The video evaluation loop: every codec at every quality on every clip, one CSV row each.

A row codes the whole clip (or its first `--frames` frames) into a real file, decodes it
and compares each decoded frame with the source frame: PSNR on RGB (8-bit, peak 255) and on
BT.601 luma, each the mean over the frames of the per-frame PSNR, as video test conditions
average it; and, when asked, ColorVideoVDP over the whole clip (`lic.eval.cvvdp`: its temporal
model pools the frames, in JOD, for a named display model), fed the same frame pairs. The rate is the file's size over all frames: bpp = bits / (W x H x frames),
kbit/s at the clip's frame rate. Encode time runs from the first source frame read to the
file closed: every codec is handed the same stream of decoded source frames, so reading
the source counts alike for all. Decode time counts only the decoder's work, not the
metrics. Frames are streamed: neither the clip nor its decoded copy is held in memory.

Outputs mirror the image harness (`harness.py`, whose CSV journal, curve JSON, plots and
BD-rate code this reuses): `per-clip.csv` (rows appended as they finish, so an interrupted
run resumes and a repeated one skips what is done; rows of another frame count or model
are redone, and a row lacking JOD is coded again and completed, keeping its times when the
file has the same bytes), `<clip>/<codec>.json` (one RD curve per codec and clip), `<clip>/rd-psnr-rgb.png`
(and Y-PSNR; PNG and PDF, log bpp axis) and `bd-vs-<anchor>.md`: BD-rates per clip and their
mean over the clips, and each curve's RGB PSNR at fixed rates.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from lic.errors import InputError, LicError
from lic.eval import cvvdp, metrics
from lic.eval.bdrate import bd_notes, bd_table, format_clip_table
from lic.eval.envelope import envelope_at
from lic.eval.plots import plot_curves
from lic.eval.results import (DISPLAY_COLUMN, Curve, Row, RowSchema, journal, make_curve, read_curve, read_rows,
                              write_json)
from lic.eval.video_codecs import VideoCodec
from lic.video.io import VideoSource, open_video

ROWS_FILE = "per-clip.csv"
VIDEO_ROWS = RowSchema(
    ("codec", "model_hash", "quality", "clip", "width", "height", "frames", "fps", "bytes", "bpp", "kbps",
     "psnr-rgb", "psnr-y", "cvvdp", DISPLAY_COLUMN, "encoding_time", "decoding_time", "encoding_fps", "decoding_fps"),
    frozenset({"codec", "model_hash", "clip", DISPLAY_COLUMN}), frozenset({"quality", "width", "height", "frames", "bytes"}),
    "clip")
#: What a curve averages per quality (a curve is one clip, so these are that clip's values).
CURVE_KEYS = ("bpp", "kbps", "psnr-rgb", "psnr-y", "cvvdp", "encoding_time", "decoding_time", "encoding_fps",
              "decoding_fps")
BD_VIDEO_METRICS = ("psnr-rgb", "psnr-y", "cvvdp")
#: Rates at which the report reads each curve's RGB PSNR (interpolated linearly in log bpp).
REPORT_BPP = (0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Clip:
    """A clip as evaluated: its file or frame folder, the folder's frame rate, a frame limit."""

    path: Path
    folder_fps: Fraction | None = None
    max_frames: int | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path.is_dir() else self.path.stem

    def open(self) -> VideoSource:
        return open_video(self.path, self.folder_fps if self.path.is_dir() else None)

    def frames(self, source: VideoSource) -> Iterator[np.ndarray]:
        return islice(source, self.max_frames)

    def count(self, source: VideoSource) -> int:
        """Frames evaluated: from the container when it states them, else by decoding the clip once."""
        total = source.frames if source.frames is not None else sum(1 for _ in source)
        return total if self.max_frames is None else min(total, self.max_frames)


def measure(codec: VideoCodec, quality: int, clip: Clip, workdir: Path, display: str | None = None,
            earlier: Row | None = None) -> Row:
    """Codes, decodes and measures one clip at one quality: one CSV row; with `display`, JOD on
    that display too. With an `earlier` row of the same file (same bytes), its times are kept
    and only JOD is added."""
    source = clip.open()
    path = workdir / f"{clip.name}.q{quality}{codec.suffix}"
    codec.prepare(quality)  # untimed: loading a model is not encoding
    start = time.perf_counter()
    codec.encode(clip.frames(source), source.fps, quality, path)
    seconds_enc = time.perf_counter() - start
    size = path.stat().st_size

    decoded, seconds_dec = codec.decode(path), 0.0
    psnr_rgb, psnr_y = [], []

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(source, decoded) frames, timing the decoder and measuring PSNR on the way."""
        nonlocal seconds_dec
        for original in clip.frames(source):
            tick = time.perf_counter()
            frame = next(decoded, None)
            seconds_dec += time.perf_counter() - tick
            if frame is None or frame.shape != original.shape or frame.dtype != np.uint8:
                got = "too few frames" if frame is None else f"a {frame.dtype} frame of shape {frame.shape}"
                raise LicError(f"{codec.name} q{quality} decoded {got} for frame {len(psnr_rgb) + 1} of {clip.name}")
            psnr_rgb.append(metrics.psnr(original, frame))
            psnr_y.append(metrics.y_psnr(original, frame))
            yield original, frame

    stream = pairs()
    jod = None
    if display is not None:
        jod = cvvdp.load(display).video(stream, source.height, source.width, clip.count(clip.open()), float(source.fps))
    for _ in stream:  # the rest (all of it without JOD)
        pass
    tick = time.perf_counter()
    if next(decoded, None) is not None:
        raise LicError(f"{codec.name} q{quality} decoded more frames of {clip.name} than it was given")
    seconds_dec += time.perf_counter() - tick
    path.unlink()

    measured = {"cvvdp": None if jod is None else round(jod, 6), DISPLAY_COLUMN: display or ""}
    if earlier is not None and earlier["bytes"] == size:
        return {**earlier, **measured}
    count = len(psnr_rgb)
    bits = 8 * size
    return {
        "codec": codec.name, "model_hash": codec.model_hash(quality), "quality": quality, "clip": clip.name,
        "width": source.width, "height": source.height, "frames": count, "fps": round(float(source.fps), 6),
        "bytes": size, "bpp": round(bits / (source.width * source.height * count), 6),
        "kbps": round(bits / 1000 / (count / float(source.fps)), 3),
        "psnr-rgb": round(float(np.mean(psnr_rgb)), 4), "psnr-y": round(float(np.mean(psnr_y)), 4), **measured,
        "encoding_time": round(seconds_enc, 4), "decoding_time": round(seconds_dec, 4),
        "encoding_fps": round(count / seconds_enc, 3), "decoding_fps": round(count / max(seconds_dec, 1e-9), 3),
    }


def _current(row: Row, codec: VideoCodec, frames: int) -> bool:
    """The row is of a quality the codec still has, by the same model, over the same frames."""
    return (row["quality"] in codec.qualities and row["model_hash"] == codec.model_hash(row["quality"])
            and row["frames"] == frames)


def _check_names(clips: list[Clip], codecs: list[VideoCodec]) -> None:
    for what, names in (("clips", [c.name for c in clips]), ("codecs", [c.name for c in codecs])):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(f"two {what} are both called '{repeated[0]}': evaluate them into different folders")


def _complete(row: Row, display: str | None) -> bool:
    return display is None or (row["cvvdp"] is not None and row[DISPLAY_COLUMN] == display)


def evaluate_video(clips: list[Clip], codecs: list[VideoCodec], out: Path, force: bool = False,
                   log: Callable[[str], None] = print, display: str | None = None) -> dict[str, list[Path]]:
    """Runs what is missing in `out`, writes the CSV and the curves; returns each clip's curve JSONs.

    Single-threaded throughout (the anchors' settings, torch for lic on the CPU), so times
    compare across codecs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _evaluate(clips, codecs, out, force, log, display)
    finally:
        torch.set_num_threads(threads)


def _evaluate(clips: list[Clip], codecs: list[VideoCodec], out: Path, force: bool,
              log: Callable[[str], None], display: str | None) -> dict[str, list[Path]]:
    _check_names(clips, codecs)
    counts = {clip.name: clip.count(clip.open()) for clip in clips}  # every clip readable before any coding
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / ROWS_FILE
    kept = read_rows(rows_path, VIDEO_ROWS) if rows_path.exists() else []
    if force:
        kept = [r for r in kept if r["codec"] not in {c.name for c in codecs}]
    latest = {VIDEO_ROWS.key(r): r for r in kept}
    by_name = {c.name: c for c in codecs}
    current = {k: r for k, r in latest.items()
               if k[0] in by_name and k[2] in counts and _current(r, by_name[k[0]], counts[k[2]])}
    done = {k for k, r in current.items() if _complete(r, display)}
    jobs = [(c, q, clip) for clip in clips for c in codecs for q in c.qualities if (c.name, q, clip.name) not in done]
    total = sum(len(c.qualities) for c in codecs) * len(clips)
    if done:
        log(f"resuming: {total - len(jobs)} of {total} rows are already in {rows_path}")

    with (
        tempfile.TemporaryDirectory(prefix="lic-eval-video-") as workdir,
        journal(rows_path, latest, VIDEO_ROWS) as write,
        tqdm(total=len(jobs), desc="eval-video", unit="row", file=sys.stderr, disable=not jobs) as bar,
    ):
        for codec, quality, clip in jobs:
            bar.set_postfix_str(f"{clip.name} {codec.name} q{quality}")
            write(measure(codec, quality, clip, Path(workdir), display, current.get((codec.name, quality, clip.name))))
            bar.update()

    written = {}
    for clip in clips:
        folder = out / clip.name
        folder.mkdir(exist_ok=True)
        written[clip.name] = []
        for codec in codecs:
            rows = [r for r in latest.values()
                    if r["codec"] == codec.name and r["clip"] == clip.name and _current(r, codec, counts[clip.name])]
            curve = make_curve(codec.name, codec.description, clip.name, codec.qualities, rows, VIDEO_ROWS, CURVE_KEYS)
            curve["frames"] = counts[clip.name]
            path = folder / f"{codec.name}.json"
            write_json(path, curve, force=True)
            written[clip.name].append(path)
    log(f"wrote {rows_path} and the curves of {len(clips)} clip(s) in {out}")
    return written


def clip_curves(out: Path, clip: str) -> list[Curve]:
    """Every curve in a clip's folder: this run's codecs and any measured earlier."""
    return [read_curve(p) for p in sorted((out / clip).glob("*.json"))]


def _rates_table(curves_by_clip: dict[str, list[Curve]]) -> str:
    head = ["clip", "codec", *(f"PSNR-RGB at {b:g} bpp" for b in REPORT_BPP)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(REPORT_BPP)]
    for clip, curves in curves_by_clip.items():
        for curve in curves:
            values = [envelope_at([curve], "psnr-rgb", b, log_bpp=True) for b in REPORT_BPP]
            cells = ["n/a" if v is None else f"{v[0]:.2f}" for v in values]
            lines.append(f"| {clip} | {curve.name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def report(out: Path, clips: list[str], anchor: str) -> str:
    """Plots each clip's curves and returns the Markdown report: BD-rates against `anchor` per
    clip and their mean (if the anchor has a curve on every clip), and PSNR at fixed rates."""
    curves_by_clip = {clip: clip_curves(out, clip) for clip in clips}
    for clip, curves in curves_by_clip.items():
        plot_curves(curves, out / clip, log_bpp=True, force=True)
    rates = ["## RGB PSNR read off each curve (linear in log bpp between measured points)\n", _rates_table(curves_by_clip)]
    missing = [clip for clip, curves in curves_by_clip.items() if anchor not in {c.name for c in curves}]
    if missing:
        return "\n".join([f"No BD-rates: the anchor {anchor} has no curve for {', '.join(missing)}.\n", *rates])
    tables = {clip: bd_table(curves, anchor, BD_VIDEO_METRICS) for clip, curves in curves_by_clip.items()}
    parts = [f"## BD vs {anchor}, per clip and mean over the clips\n"]
    measured = [m for m in BD_VIDEO_METRICS if any(c.points(m)[0] for cs in curves_by_clip.values() for c in cs)]
    parts += [format_clip_table(tables, anchor, metric, delta)
              for metric, delta in (("psnr-rgb", False), ("psnr-y", False), ("psnr-rgb", True),
                                    ("cvvdp", False), ("cvvdp", True)) if metric in measured]
    parts.append("\n".join(bd_notes(anchor)) + "\nmean: the mean of the per-clip values.\n")
    return "\n".join(parts + rates)
