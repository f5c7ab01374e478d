"""Video in and out as 8-bit RGB frames (H x W x 3 uint8), streamed one frame at a time.

Reading (`open_video`) accepts anything PyAV (FFmpeg) decodes -- mp4, mkv, y4m, avi, ... --
and a folder of numbered frames (any format Pillow reads, in natural order: f2 before f10).
Y'CbCr video is converted to RGB by swscale with the matrix and range the stream declares
(BT.601 limited range when it declares none, as FFmpeg does). A folder has no frame rate, so
the caller gives one (default 25). Frames are decoded as they are iterated: a clip is never
held in memory, and every iteration starts again from the first frame.

Writing (`VideoWriter`) is always lossless, so a decoded clip is measured as decoded:

| path              | written as                                   | read back                  |
|-------------------|----------------------------------------------|----------------------------|
| `out.mkv`         | FFV1 (pix_fmt bgr0) in Matroska              | identical RGB              |
| `out.mp4`         | H.264 RGB (libx264rgb, qp 0) in MP4          | identical RGB; many players show only Y'CbCr H.264 |
| `out` or `out/`   | a folder of PNGs, 000001.png, 000002.png ... | identical RGB              |
| `out.y4m`         | refused: Y4M holds only Y'CbCr, which cannot keep 8-bit RGB exactly |  |

Outputs are written to a temporary name beside the target and renamed into place when the
writer closes without error (`lic.files.atomic_output` for files; the same for a folder),
and an existing output is replaced only with `force`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from lic.errors import InputError
from lic.files import atomic_output, check_writable, give_default_permissions
from lic.imageio import load_image
from lic.video.container import frame_rate

#: The frame rate of a folder of frames when the caller gives none.
DEFAULT_FOLDER_FPS = 25


@dataclass(frozen=True)
class VideoSource:
    """A clip's geometry and rate; iterating it decodes its frames from the first one.

    `frames` is the frame count when the container states it (None otherwise, e.g. y4m, mkv).
    """

    path: Path
    fps: Fraction
    width: int
    height: int
    frames: int | None
    has_audio: bool
    _read: Callable[[], Iterator[np.ndarray]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for index, frame in enumerate(self._read()):
            if frame.shape != (self.height, self.width, 3):
                raise InputError(f"{self.path}: frame {index + 1} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"not {self.width}x{self.height} like the first; frames must all have one size")
            yield frame


def natural_key(name: str) -> tuple:
    """Sort key in which digit runs compare as numbers: f2.png before f10.png."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def frame_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` (by extension, as Pillow registers them), in natural order."""
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in readable),
                  key=lambda p: natural_key(p.name))


def _open_folder(folder: Path, fps: "float | Fraction | None") -> VideoSource:
    files = frame_files(folder)
    if not files:
        raise InputError(f"{folder}: no image frames in this folder")
    first = load_image(files[0]).rgb  # a readable first frame, or one clear error now

    def read() -> Iterator[np.ndarray]:
        for path in files:
            yield load_image(path).rgb

    rate = frame_rate(DEFAULT_FOLDER_FPS if fps is None else fps)
    return VideoSource(folder, rate, first.shape[1], first.shape[0], len(files), False, read)


def _open_container(path: Path, fps: "float | Fraction | None") -> VideoSource:
    import av

    def frames() -> Iterator[np.ndarray]:
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as e:
            raise InputError(f"{path}: cannot decode the video ({e})") from None

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            count = stream.frames or None
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as e:
        raise InputError(f"{path}: not a video that FFmpeg can read ({e})") from None
    reader = frames()
    first = next(reader, None)
    reader.close()
    if first is None:
        raise InputError(f"{path}: the video has no frames")
    rate = fps if fps is not None else (rate or DEFAULT_FOLDER_FPS)
    return VideoSource(path, frame_rate(rate), first.shape[1], first.shape[0], count, has_audio, frames)


def open_video(path: "str | Path", fps: "float | Fraction | None" = None) -> VideoSource:
    """A video file or a folder of frames. `fps` is the rate of a folder (default 25); for a
    file it replaces the rate the file states."""
    path = Path(path)
    if path.is_dir():
        return _open_folder(path, fps)
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    return _open_container(path, fps)


#: What each output suffix is written as: (container format, encoder, pix_fmt, encoder options).
_CONTAINERS = {
    ".mkv": ("matroska", "ffv1", "bgr0", {}),
    ".mp4": ("mp4", "libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}),
}


def _is_folder_output(path: "str | Path") -> bool:
    return str(path).endswith(("/", os.sep)) or Path(path).suffix == ""


def check_output_format(path: "str | Path") -> None:
    """Fails if `path` names no lossless video output (the suffix decides; none: a folder)."""
    if _is_folder_output(path):
        return
    target = Path(path)
    if target.suffix.lower() == ".y4m":
        raise InputError(f"{target}: Y4M holds only Y'CbCr, which cannot keep RGB frames exactly; "
                         "write .mkv (FFV1), .mp4 (lossless H.264 RGB) or a folder of PNGs")
    if target.suffix.lower() not in _CONTAINERS:
        raise InputError(f"{target}: unsupported video output '{target.suffix}' "
                         "(lossless outputs: .mkv, .mp4, or a folder for PNG frames)")


def check_output(path: "str | Path", force: bool) -> None:
    """Fails before any work is done if `path` is not a writable lossless video output."""
    check_output_format(path)
    target = Path(path)
    if not _is_folder_output(path):
        check_writable(target, force)
        return
    if target.exists() and not force:
        raise InputError(f"{target}: already exists (use --force to overwrite)")
    if target.is_dir() and any(p.suffix.lower() != ".png" or not p.is_file() for p in target.iterdir()):
        raise InputError(f"{target}: holds files other than PNG frames; refusing to replace it")
    if not target.parent.exists():
        raise InputError(f"{target.parent}: no such folder")


class VideoWriter:
    """Writes RGB frames losslessly to `path` (see the module docstring for the formats).

    Use as a context manager: the output appears, complete, when the block ends without an
    error; after an error nothing is left behind.
    """

    def __init__(self, path: "str | Path", fps: "float | Fraction", width: int, height: int, *,
                 force: bool = False) -> None:
        check_output(path, force)
        self.path = Path(path)
        self.width, self.height = width, height
        self.frames = 0
        self._folder = _is_folder_output(path)
        if self._folder:
            try:
                self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
            except OSError as e:
                raise InputError(f"{self.path}: cannot write here ({e.strerror})") from None
            give_default_permissions(self._tmp)
            return
        import av

        container_format, codec, pix_fmt, options = _CONTAINERS[self.path.suffix.lower()]
        self._output = ExitStack()  # holds the temporary file until it is renamed or removed
        self._tmp = self._output.enter_context(atomic_output(self.path, force))
        try:
            self._container = av.open(str(self._tmp), "w", format=container_format)
            self._stream = self._container.add_stream(codec, rate=frame_rate(fps))
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt
            self._stream.options = options
        except BaseException as e:
            self._output.__exit__(type(e), e, e.__traceback__)
            raise

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise InputError(f"{self.path}: frame {self.frames + 1} is {frame.dtype} {frame.shape}, "
                             f"not uint8 ({self.height}, {self.width}, 3)")
        self.frames += 1
        if self._folder:
            Image.fromarray(frame).save(self._tmp / f"{self.frames:06d}.png")
            return
        import av

        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self._container.mux(packet)

    def _finish(self) -> None:
        if self.frames == 0:
            raise InputError(f"{self.path}: no frames to write")
        if self._folder:
            self._replace_folder()
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._output.close()  # renames the finished file into place

    def _replace_folder(self) -> None:
        """Moves the finished folder into place; a forced, earlier folder of frames goes last."""
        old = None
        if self.path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
            os.replace(self.path, old / "frames")
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old)

    def _abort(self, error: BaseException) -> None:
        if self._folder:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 -- the output is discarded either way
            pass
        self._output.__exit__(type(error), error, error.__traceback__)  # removes the temporary file

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self._abort(value)
            return
        try:
            self._finish()
        except BaseException as e:
            self._abort(e)
            raise
