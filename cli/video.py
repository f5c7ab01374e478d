"""The clip side of `lic encode`, `lic decode` and `lic info` (the commands live in codec.py)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import typer

from lic.errors import InputError

#: Video files `lic encode` takes as clips without --video (anything else PyAV reads needs --video).
VIDEO_SUFFIXES = {".mp4", ".mkv", ".y4m", ".avi", ".mov", ".webm", ".m4v", ".ts", ".mpg", ".mpeg"}


def is_clip_source(path: Path, as_video: bool) -> bool:
    """A clip: a video file by suffix, or any file or frame folder under --video."""
    return as_video or (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES)


def is_clip_file(path: Path) -> bool:
    """Whether a .lic file holds a clip (by its magic; the container checks the rest)."""
    from lic.video.container import is_video

    with open(path, "rb") as f:
        return is_video(f.read(4))


def encode_clip(src: Path, dst: Path, *, quality: int, model: str | None, fps: float | None, gop: int,
                intra_only: bool, max_frames: int | None, device: str, force: bool, max_pixels: int | None) -> str:
    import lic
    from lic.video.io import open_video

    clip = open_video(src, fps=fps)
    if clip.has_audio:
        typer.echo(f"note: {src}: the audio track is not coded (lic codes video only)", err=True)
    summary = lic.compress_video(clip, dst, quality, model=model or "video", gop=gop, intra_only=intra_only,
                                 device=device, max_frames=max_frames, max_pixels=max_pixels,
                                 force=force, progress=True)
    return (f"{src} -> {dst}: {summary['frames']} frames {summary['width']}x{summary['height']} "
            f"@ {summary['fps']:g} fps, {summary['bytes']:,} bytes, {summary['bpp']:.4f} bpp, "
            f"{summary['kbit_s']:.1f} kbit/s, encode {summary['encode_fps']:.2f} fps")


def decode_clip(src: Path, dst: Path, *, model: str | None, device: str, force: bool, max_pixels: int | None) -> str:
    from tqdm import tqdm

    import lic
    from lic.video.io import VideoWriter

    video = lic.decompress_video(src, model=model, device=device, max_pixels=max_pixels)
    h = video.header
    t0 = time.perf_counter()
    with VideoWriter(dst, h.fps, h.width, h.height, force=force) as writer, \
            tqdm(total=h.frames, unit="frame", dynamic_ncols=True) as bar:
        for frame in video:
            writer.write(frame)
            bar.update(1)
            bar.set_postfix(fps=f"{bar.n / (time.perf_counter() - t0):.2f}")
    seconds = time.perf_counter() - t0
    return f"{src} -> {dst}: {h.frames} frames {h.width}x{h.height} @ {float(h.fps):g} fps, decode {h.frames / seconds:.2f} fps"


def clip_info(path: Path) -> dict:
    """What `lic info` shows for a clip: the header and, from the records, the frame types."""
    from lic import models
    from lic.video import container

    data = path.read_bytes()
    h = container.read_header(data)
    model = models.find_by_hash(h.model_hash)
    sizes = {container.FRAME_I: [], container.FRAME_P: []}
    stream = io.BytesIO(data)
    stream.seek(container.HEADER_SIZE)
    for record in container.read_records(stream, h):
        sizes[record.kind].append(sum(map(len, record.streams)))
    if not h.frames:
        raise InputError(f"{path}: the clip has no frames")
    return {
        "file": str(path), "codec": h.codec_name, "quality": h.quality,
        "model": f"{model.name} q{h.quality}" if model else "not installed", "model_hash": h.model_hash.hex(),
        "width": h.width, "height": h.height, "fps": float(h.fps), "frames": h.frames, "gop": h.gop,
        "intra_only": h.intra_only, "i_frames": len(sizes[container.FRAME_I]), "p_frames": len(sizes[container.FRAME_P]),
        "mean_i_frame_bytes": round(sum(sizes[container.FRAME_I]) / max(1, len(sizes[container.FRAME_I]))),
        "mean_p_frame_bytes": round(sum(sizes[container.FRAME_P]) / max(1, len(sizes[container.FRAME_P]))),
        "bytes": len(data), "bpp": round(8 * len(data) / (h.width * h.height * h.frames), 5),
        "kbit_s": round(8 * len(data) * float(h.fps) / h.frames / 1000, 2),
    }


def check_clip_output(dst: Path) -> None:
    """A decoded clip goes to .mkv (FFV1), .mp4 (libx264rgb) or a folder of PNGs, all lossless RGB;
    .y4m is refused (`lic.video.io` says why)."""
    from lic.video.io import check_output_format

    check_output_format(dst)
