"""What `lic eval-video` can run: the classic anchors and lic's video models, behind one interface.

`lic-video` codes with P-frames (a GOP of 32, like the anchors' keyint), `lic-video-intra`
codes every frame as an intra frame; both through the public API (`lic.compress_video`,
`lic.decompress_video`), at every quality of the installed video models, and the rate is
the size of the .lic file that `compress_video` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np

from lic import models
from lic.errors import ModelError
from lic.eval.codecs import runnable
from lic.eval.video_baselines import VIDEO_BASELINES

#: The model family of lic's video models in the zoo.
VIDEO_FAMILY = "video"
#: lic's video codecs by name: whether each codes intra frames only.
LIC_VIDEO = {"lic-video": False, "lic-video-intra": True}


class VideoCodec(Protocol):
    """A codec the video harness can sweep. Frames are uint8 H x W x 3 RGB."""

    name: str
    description: str
    qualities: tuple[int, ...]
    suffix: str  # of the file `encode` writes

    def unavailable(self) -> str | None:
        """Why this machine cannot run the codec, or None."""

    def prepare(self, quality: int) -> None:
        """Untimed set-up before a clip is coded at `quality` (e.g. loading a model)."""

    def model_hash(self, quality: int) -> str:
        """The model behind a quality ("" for classic codecs): rows of another model are redone."""

    def encode(self, frames: Iterable[np.ndarray], fps: Fraction, quality: int, path: Path) -> None:
        """Writes the complete coded clip to `path`: its size is the rate."""

    def decode(self, path: Path) -> Iterator[np.ndarray]:
        """The decoded frames, one at a time."""


@dataclass(frozen=True)
class LicVideoCodec:
    """lic's video models through the public API; `gop` matches the anchors' keyint."""

    name: str
    files: tuple[models.ModelFile, ...]  # the zoo's video model, one file per quality
    intra_only: bool
    device: str = "cpu"
    gop: int = 32
    suffix: str = ".lic"

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(sorted({q for m in self.files for q in m.qualities}))

    @property
    def description(self) -> str:
        structure = "intra frames only" if self.intra_only else f"P-frames, GOP {self.gop}"
        return f"lic video model '{self.files[0].name}' (zoo), {structure}, .lic files, {self.device}"

    def unavailable(self) -> str | None:
        return None

    def _file(self, quality: int) -> models.ModelFile:
        return next(m for m in self.files if quality in m.qualities)

    def prepare(self, quality: int) -> None:
        """Loads the model (lic caches it), so that loading is not timed as encoding."""
        from lic.codecs.base import to_device

        models.load_codec(self._file(quality).path, str(to_device(self.device)), quality)

    def model_hash(self, quality: int) -> str:
        return self._file(quality).hash.hex()

    def encode(self, frames: Iterable[np.ndarray], fps: Fraction, quality: int, path: Path) -> None:
        import lic

        lic.compress_video(frames, path, quality, model=self._file(quality).name, gop=self.gop,
                           intra_only=self.intra_only, fps=fps, device=self.device)

    def decode(self, path: Path) -> Iterator[np.ndarray]:
        import lic

        yield from lic.decompress_video(path, device=self.device)


def _lic_video(name: str, device: str) -> LicVideoCodec:
    files = tuple(m for m in models.available() if m.family == VIDEO_FAMILY)
    if not files:
        raise ModelError(f"{name}: no lic video models are installed (`lic models` lists none of family "
                         f"'{VIDEO_FAMILY}')")
    names = sorted({m.name for m in files})
    if len(names) > 1:
        raise ModelError(f"{name}: several video models are installed ({', '.join(names)}); {name} runs exactly one")
    return LicVideoCodec(name, files, LIC_VIDEO[name], device)


def resolve_video(name: str, device: str = "cpu") -> VideoCodec:
    """The video codec called `name`: x264, x265, lic-video or lic-video-intra."""
    if name in LIC_VIDEO:
        return _lic_video(name, device)
    return runnable(name, VIDEO_BASELINES, f"video codecs: {', '.join([*VIDEO_BASELINES, *LIC_VIDEO])}")
