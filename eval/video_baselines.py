"""Classic video anchors: x264 and x265 in a low-delay P configuration, 4:4:4, through PyAV.

Both code the clip in one pass with constant rate factor (the quality knob: CRF, lower is
better), an intra frame every 32 frames and no B-frames or scene cuts, so the group
structure is the one the learned video codec uses (`gop=32`). RGB goes to Y'CbCr 4:4:4 by
swscale with the BT.601 matrix in limited range, and decoded frames come back the same way;
the conversion alone costs about 53.6 dB of RGB PSNR. The rate is the size of the raw
elementary stream (Annex B: parameter sets, slices and whatever SEI the encoder writes; no
container), written to a file as the packets arrive.

x264 runs `preset=veryslow`, `tune=psnr`, one thread, two slices per frame. The two slices
are what PyAV's default (slice threading, one slice per core) gave on the two-core machine
that measured the project's reference numbers; stating them here makes the anchor the same
on every machine. With one slice the anchor is stronger at low rates (BasketballPass: +0.35
dB at 0.05 bpp, +0.17 at 0.1, +0.1 at 0.2). x265 runs `preset=medium` (psy-rd and AQ on:
there is no tune=psnr), one thread (frame-threads=1, no pool), x265's informational SEI off.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from lic.eval.baselines import bt601_conversion, pyav_missing

#: The low-delay P structure shared by both anchors (and lic's default GOP of 32).
LOW_DELAY_P = "keyint=32:min-keyint=32:scenecut=0:bframes=0"

#: The CRF sweep: 0.01-1 bpp on CIF clips, points two CRF apart so that values read off the
#: curve at a given bpp are interpolated over short spans. Listed from low to high quality.
DEFAULT_CRFS = tuple(range(44, 11, -2))


@dataclass(frozen=True)
class LowDelayAnchor:
    """One encoder (libx264 or libx265) with its fixed settings; `quality` is the CRF."""

    name: str
    encoder: str
    decoder: str
    params_option: str  # "x264-params" or "x265-params"
    params: str
    options: tuple[tuple[str, str], ...]  # other encoder options
    suffix: str  # of the elementary-stream file
    qualities: tuple[int, ...] = DEFAULT_CRFS

    @property
    def description(self) -> str:
        import av

        settings = ", ".join(f"{k}={v}" for k, v in self.options)
        return (f"{self.encoder} via PyAV {av.__version__}, {settings}, {self.params_option} {self.params}, "
                "yuv444p BT.601 limited range, CRF sweep, raw elementary stream")

    def unavailable(self) -> str | None:
        return pyav_missing(self.encoder, self.decoder)

    def prepare(self, quality: int) -> None:
        """Nothing to set up: each clip gets a fresh encoder."""

    def model_hash(self, quality: int) -> str:
        return ""

    def encode(self, frames: Iterable[np.ndarray], fps: Fraction, quality: int, path: Path) -> None:
        """Codes the frames at CRF `quality` into the elementary-stream file `path`."""
        import av

        conversion, space, limited = bt601_conversion(full_range=False)
        ctx = None
        with path.open("wb") as out:
            for index, rgb in enumerate(frames):
                if ctx is None:
                    ctx = av.CodecContext.create(self.encoder, "w")
                    ctx.width, ctx.height, ctx.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv444p"
                    ctx.time_base, ctx.framerate = 1 / Fraction(fps), Fraction(fps)
                    ctx.colorspace, ctx.color_range = space, limited  # signalled in the VUI
                    ctx.options = {**dict(self.options), "crf": str(quality), self.params_option: self.params}
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                    format="yuv444p", dst_colorspace=space, dst_color_range=limited, **conversion)
                frame.pts = index
                out.writelines(bytes(p) for p in ctx.encode(frame))
            if ctx is not None:
                out.writelines(bytes(p) for p in ctx.encode(None))

    def decode(self, path: Path) -> Iterator[np.ndarray]:
        """The decoded frames, back to RGB with the encoder's matrix and range."""
        import av

        conversion, space, limited = bt601_conversion(full_range=False)
        with av.open(str(path), format=self.decoder) as container:
            stream = container.streams.video[0]
            stream.thread_count = 1  # single-threaded like every timed codec
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24", src_colorspace=space, src_color_range=limited, **conversion)


X264 = LowDelayAnchor(
    "x264", "libx264", "h264", "x264-params", f"{LOW_DELAY_P}:slices=2",
    (("preset", "veryslow"), ("tune", "psnr"), ("threads", "1")), ".264")
X265 = LowDelayAnchor(
    "x265", "libx265", "hevc", "x265-params", f"{LOW_DELAY_P}:frame-threads=1:pools=none:info=0:log-level=error",
    (("preset", "medium"),), ".265")

#: The classic video anchors by name.
VIDEO_BASELINES = {c.name: c for c in (X264, X265)}
