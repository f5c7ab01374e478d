"""Classic codecs run through their real encoders, so every byte they would store is counted.

Each codec turns a uint8 RGB array into the bytes of a complete file (container and headers
included) and back. Sweeps cover roughly 0.05-2 bpp on Kodak where the format can go that low:
JPEG cannot go below ~0.1 bpp and JPEG XL below ~0.17 bpp; the downscaled codecs reach
lower rates. Encoders run single-threaded, so times compare across codecs and `--workers`
parallelism is over images.
"""

from __future__ import annotations

import importlib
import io
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import metadata

import numpy as np
from PIL import Image, features


def _pil_version(feature: str) -> str:
    return f"{features.version(feature) or '?'} via Pillow {Image.__version__}"


@dataclass(frozen=True)
class PillowCodec:
    """A format Pillow writes; `quality` is passed as Pillow's quality option."""

    name: str
    description: str
    qualities: tuple[int, ...]
    format: str
    options: dict = field(default_factory=dict)
    plugin: str | None = None  # a module whose import registers the format with Pillow

    def _load_plugin(self) -> None:
        if self.plugin:
            importlib.import_module(self.plugin)

    def unavailable(self) -> str | None:
        try:
            self._load_plugin()
        except ImportError:
            return f"the Pillow plugin {self.plugin} is not installed"
        Image.init()
        return None if self.format in Image.SAVE else f"this Pillow cannot write {self.format}"

    def prepare(self, quality: int) -> None:
        """Nothing to set up: the encoder is part of Pillow."""

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        self._load_plugin()
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format=self.format, quality=quality, **self.options)
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        self._load_plugin()
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))


def pyav_missing(encoder: str, decoder: str) -> str | None:
    """Why PyAV cannot run this encoder and decoder pair, or None."""
    try:
        import av
    except ImportError:
        return "PyAV (av) is not installed"
    if encoder not in av.codecs_available or decoder not in av.codecs_available:
        return f"this PyAV build has no {encoder} encoder or {decoder} decoder"
    return None


def bt601_conversion(full_range: bool) -> tuple[dict, object, object]:
    """Exact-rounding swscale options, the BT.601 matrix and the range, for RGB <-> Y'CbCr both ways."""
    from av.video.reformatter import ColorRange, Colorspace, Interpolation

    exact = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    return {"interpolation": exact, "threads": 1}, Colorspace.ITU601, ColorRange.JPEG if full_range else ColorRange.MPEG


@dataclass(frozen=True)
class HevcCodec:
    """HEVC intra, the codec inside BPG: x265 through PyAV, one 4:4:4 frame, constant QP.

    RGB goes to full-range BT.601 Y'CbCr 4:4:4, as BPG does by default (the 8-bit colour
    conversion alone limits PSNR to about 49 dB). The bytes are the raw Annex-B bitstream
    (VPS, SPS, PPS and the slice); x265's informational SEI is switched off, so nothing in
    the count is decoration. `quality` is the QP: lower is better, as in `bpgenc -q`.
    """

    name: str = "hevc"
    qualities: tuple[int, ...] = (51, 47, 42, 37, 32, 27, 22)
    preset: str = "slow"

    @property
    def description(self) -> str:
        import av

        return (f"HEVC intra 4:4:4 (x265 via PyAV {av.__version__}, preset {self.preset}, constant QP, "
                "full-range BT.601 Y'CbCr; BPG stand-in)")

    def unavailable(self) -> str | None:
        return pyav_missing("libx265", "hevc")

    def prepare(self, quality: int) -> None:
        """Nothing to set up: each image gets a fresh encoder."""

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        import av

        options, space, full = bt601_conversion(full_range=True)
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height, ctx.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv444p"
        ctx.time_base = Fraction(1, 1)
        ctx.colorspace, ctx.color_range = space, full  # signalled in the VUI
        ctx.options = {
            "preset": self.preset,
            "x265-params": f"qp={quality}:keyint=1:frame-threads=1:pools=none:info=0:log-level=error",
        }
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv444p", dst_colorspace=space, dst_color_range=full, **options)
        packets = ctx.encode(frame) + ctx.encode(None)
        return b"".join(bytes(p) for p in packets)

    def decode(self, data: bytes) -> np.ndarray:
        import av

        options, space, full = bt601_conversion(full_range=True)
        ctx = av.CodecContext.create("hevc", "r")
        frames = ctx.decode(av.Packet(data)) + ctx.decode(None)
        return frames[0].to_ndarray(format="rgb24", src_colorspace=space, src_color_range=full, **options)


@dataclass(frozen=True)
class Downscaled:
    """Resize by 1/factor (Lanczos), code with `inner`, decode and resize back (Lanczos).

    The baseline for extreme-low-rate codecs. The file is a 4-byte prefix holding the full
    size (two big-endian uint16, which the decoder needs to upscale) and the inner file;
    both count towards the rate, which is always per full-resolution pixel.
    """

    name: str
    inner: PillowCodec
    factor: int
    qualities: tuple[int, ...]

    @property
    def description(self) -> str:
        return f"{self.inner.description}, at 1/{self.factor} size (Lanczos down and up)"

    def unavailable(self) -> str | None:
        return self.inner.unavailable()

    def prepare(self, quality: int) -> None:
        self.inner.prepare(quality)

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        height, width = rgb.shape[:2]
        small = Image.fromarray(rgb).resize(
            (max(1, round(width / self.factor)), max(1, round(height / self.factor))), Image.Resampling.LANCZOS)
        return struct.pack(">HH", width, height) + self.inner.encode(np.asarray(small), quality)

    def decode(self, data: bytes) -> np.ndarray:
        width, height = struct.unpack(">HH", data[:4])
        small = Image.fromarray(self.inner.decode(data[4:]))
        return np.asarray(small.resize((width, height), Image.Resampling.LANCZOS))


def _build() -> dict[str, PillowCodec | HevcCodec | Downscaled]:
    jpeg = f"libjpeg-turbo {features.version_feature('libjpeg_turbo') or '?'} via Pillow {Image.__version__}"
    jpeg_q = (2, 5, 10, 20, 35, 50, 70, 85)
    webp = PillowCodec("webp", f"WebP (libwebp {_pil_version('webp')}), method 6",
                       (0, 5, 15, 30, 50, 70, 80, 90), "WEBP", {"method": 6})
    # Speed 6 is Pillow's default: on Kodak, speed 4 saved 1-2% of the bits for 3-7x the time.
    avif = PillowCodec("avif", f"AVIF (libavif {_pil_version('avif')}), speed 6, 4:4:4",
                       (0, 10, 25, 40, 55, 70, 80, 88), "AVIF",
                       {"speed": 6, "subsampling": "4:4:4", "max_threads": 1})
    try:
        jxl_version = metadata.version("pillow-jxl-plugin")
    except metadata.PackageNotFoundError:
        jxl_version = "?"
    codecs = [
        PillowCodec("jpeg-420", f"JPEG 4:2:0 ({jpeg}), optimised Huffman tables", jpeg_q, "JPEG",
                    {"subsampling": 2, "optimize": True}),
        PillowCodec("jpeg-444", f"JPEG 4:4:4 ({jpeg}), optimised Huffman tables", jpeg_q, "JPEG",
                    {"subsampling": 0, "optimize": True}),
        webp,
        avif,
        PillowCodec("jxl", f"JPEG XL (libjxl via pillow-jxl-plugin {jxl_version}), effort 7",
                    (0, 10, 25, 45, 65, 80, 88, 92), "JXL", {"effort": 7, "num_threads": 1}, "pillow_jxl"),
        HevcCodec(),
        # The low end of each sweep: these exist for rates below what the full-size codecs reach.
        Downscaled("avif-down2", avif, 2, (0, 10, 20, 30, 40, 50, 60, 70)),
        Downscaled("avif-down4", avif, 4, (0, 10, 20, 30, 40, 50, 60, 70)),
        Downscaled("webp-down2", webp, 2, (0, 5, 15, 30, 50, 70, 80, 90)),
        Downscaled("webp-down4", webp, 4, (0, 5, 15, 30, 50, 70, 80, 90)),
    ]
    return {c.name: c for c in codecs}


#: The classic codecs by name, in the order they are listed and plotted.
BASELINES = _build()
