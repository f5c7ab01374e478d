"""The video API: `compress_video` a clip into a .lic video, `decompress_video` it back.

    import lic
    summary = lic.compress_video("clip.mp4", "clip.lic", quality=3)   # frames, bytes, kbit/s, ...
    video = lic.decompress_video("clip.lic")                          # video.header: size, fps, ...
    for frame in video: ...                                           # uint8 (H, W, 3) RGB

Both sides stream: memory holds the current frame, its reference and one record, whatever
the clip's length.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from lic import models
from lic.api import check_pixels
from lic import codec_ids
from lic.codecs.base import to_device
from lic.video.codec import VideoCodec
from lic.errors import DeterminismError, FormatError, InputError, ModelError, ResourceError
from lic.files import atomic_output
from lic.video import container
from lic.video.container import FLAG_INTRA_ONLY, VideoHeader

DEFAULT_GOP = 32


@dataclass
class _Frames:
    frames: Iterable[np.ndarray]
    fps: Fraction
    count: int | None


def _source_frames(source, fps: "float | Fraction | None") -> _Frames:
    """Frames with their rate and count: from a path (`lic.video.io.open_video`), an opened
    video (anything with `fps` and `frames`), or bare frames at `fps` (default 25)."""
    if isinstance(source, (str, Path)):
        from lic.video.io import open_video

        source = open_video(Path(source), fps=fps)
    if hasattr(source, "fps"):
        return _Frames(source, container.frame_rate(source.fps), source.frames)
    return _Frames(source, container.frame_rate(25 if fps is None else fps), None)


def _pad(frame: np.ndarray, pad_bottom: int, pad_right: int) -> np.ndarray:
    """Edge replication, as images are padded (`lic.codecs.base.pad_to_multiple`)."""
    if pad_bottom or pad_right:
        return np.pad(frame, ((0, pad_bottom), (0, pad_right), (0, 0)), mode="edge")
    return frame


def _check_frame(frame: np.ndarray, index: int, shape: tuple[int, ...] | None) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
        raise InputError(f"frame {index}: expected uint8 RGB frames (H, W, 3), got {frame.dtype} {frame.shape}")
    if shape is not None and frame.shape != shape:
        raise InputError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, the clip is {shape[1]}x{shape[0]}")
    return frame


def compress_video(
    source: "str | Path | Iterable[np.ndarray]",
    output: "str | Path",
    quality: int = 3,
    *,
    model: str = "video",
    gop: int = DEFAULT_GOP,
    intra_only: bool = False,
    fps: "float | Fraction | None" = None,
    device: str = "cpu",
    max_frames: int | None = None,
    max_pixels: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> dict:
    """Codes a clip (a video file, a folder of numbered frames, or uint8 RGB frames) into the
    .lic video `output`, written atomically. `fps` is needed for frames and folders (default 25).
    Returns what was written: frames, bytes, bpp, kbit/s, seconds."""
    if not 1 <= gop <= 0xFFFF:
        raise InputError(f"--gop must be 1..65535, not {gop}")
    output = Path(output)
    model_file = models.find(model, quality)
    if model_file.family != "video":
        raise ModelError(f"model '{model}' is a {model_file.family} model, not a video model")
    codec: VideoCodec = models.load_codec(model_file.path, str(to_device(device)), quality)
    clip = _source_frames(source, fps)
    total = None if clip.count is None else min(clip.count, max_frames or clip.count)
    header = None
    coded_bytes = 0
    start = time.perf_counter()
    with atomic_output(output, force) as tmp, open(tmp, "wb") as out, \
            tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True) as bar:
        reference = None
        for index, frame in enumerate(clip.frames):
            if max_frames is not None and index >= max_frames:
                break
            frame = _check_frame(frame, index, None if header is None else (header.height, header.width, 3))
            if header is None:
                height, width = frame.shape[:2]
                check_pixels(width, height, max_pixels)
                if max(width, height) >= container.MAX_SIDE:  # the reader refuses such a header
                    raise InputError(f"a {width}x{height} clip: frame sides must be below {container.MAX_SIDE}")
                header = VideoHeader(codec_ids.codec_id(codec.family), quality, model_file.hash, width, height,
                                     clip.fps, 0, gop, -height % codec.stride, -width % codec.stride,
                                     FLAG_INTRA_ONLY if intra_only else 0)
                out.write(header.pack())  # rewritten with the frame count at the end
            intra = intra_only or index % gop == 0
            record, reference = codec.encode_frame(_pad(frame, header.pad_bottom, header.pad_right),
                                                   None if intra else reference, (header.height, header.width))
            record.index = index
            packed = record.pack()
            out.write(packed)
            coded_bytes += len(packed)
            header.frames += 1
            bar.update(1)
            seconds = time.perf_counter() - start
            bar.set_postfix(fps=f"{header.frames / seconds:.2f}",
                            kbit_s=f"{8 * coded_bytes * float(clip.fps) / header.frames / 1000:.1f}")
        if header is None:
            raise InputError("the clip has no frames")
        out.seek(0)
        out.write(header.pack())
    size = output.stat().st_size
    seconds = time.perf_counter() - start
    return {
        "file": str(output), "frames": header.frames, "width": header.width, "height": header.height,
        "fps": float(header.fps), "gop": gop, "intra_only": intra_only, "bytes": size,
        "bpp": 8 * size / (header.width * header.height * header.frames),
        "kbit_s": 8 * size * float(header.fps) / header.frames / 1000,
        "seconds": seconds, "encode_fps": header.frames / seconds,
    }


class DecodedVideo:
    """The frames of a .lic video, decoded one at a time as they are iterated."""

    def __init__(self, source: "Path | bytes", header: VideoHeader, codec: VideoCodec) -> None:
        self.header, self._source, self._codec = header, source, codec

    def __iter__(self) -> Iterator[np.ndarray]:
        h = self.header
        height, width = h.height + h.pad_bottom, h.width + h.pad_right
        reference = None
        with (io.BytesIO(self._source) if isinstance(self._source, bytes) else open(self._source, "rb")) as stream:
            stream.seek(container.HEADER_SIZE)
            for record in container.read_records(stream, h):
                try:
                    reference = self._codec.decode_frame(record, reference, height, width)
                except (MemoryError, torch.cuda.OutOfMemoryError):
                    raise ResourceError(f"out of memory decoding a {h.width}x{h.height} frame") from None
                except (FormatError, DeterminismError) as e:
                    raise type(e)(f"frame {record.index}: {e}") from None
                yield reference[: h.height, : h.width]


def read_video_header(source: "str | Path | bytes") -> VideoHeader:
    data = source[: container.HEADER_SIZE] if isinstance(source, bytes) else _read_prefix(Path(source))
    return container.read_header(data)


def _read_prefix(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(container.HEADER_SIZE)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None


def decompress_video(
    source: "str | Path | bytes", *, model: str | None = None, device: str = "cpu", max_pixels: int | None = None
) -> DecodedVideo:
    """The decoded clip: `.header` (size, fps, frames, GOP) and its frames, streamed on iteration."""
    header = read_video_header(source)
    check_pixels(header.width, header.height, max_pixels)  # padding is checked against the stride below
    model_file = _video_model(header, model)
    codec: VideoCodec = models.load_codec(model_file.path, str(to_device(device)), header.quality)
    if not isinstance(codec, VideoCodec):
        raise ModelError(f"model {model_file.name} is not a video model")
    if max(header.pad_bottom, header.pad_right) >= codec.stride or (header.height + header.pad_bottom) % codec.stride \
            or (header.width + header.pad_right) % codec.stride:
        raise FormatError("the video header is corrupted (impossible padding)")
    return DecodedVideo(source if isinstance(source, bytes) else Path(source), header, codec)


def _video_model(header: VideoHeader, model: str | None) -> models.ModelFile:
    if model is not None:
        found = models.find(model, header.quality)
        if found.hash != header.model_hash:
            raise ModelError(f"the clip was encoded with model {header.model_hash.hex()}, but {model} "
                             f"(quality {header.quality}) is {found.hash.hex()}")
        return found
    found = models.find_by_hash(header.model_hash)
    if found is None:
        raise ModelError(f"the clip needs video model {header.model_hash.hex()} (quality {header.quality}), "
                         "which is not installed; pass --model PATH")
    return found
