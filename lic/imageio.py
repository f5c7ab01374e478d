"""Turning user images into what the codecs code, and back.

The codecs code 8-bit RGB. What happens to everything else:

- greyscale (L, 1): coded as RGB, decoded back to greyscale (flag in the header);
- alpha (RGBA, LA, palette with transparency): colour is coded lossily, the alpha plane
  losslessly (zlib) in its own stream; decoded images get their alpha back;
- 16-bit (PNG I;16 or 48/64-bit RGB): reduced to 8 bits (the header notes it); decoded
  images are 8-bit;
- palette, CMYK, YCbCr, LAB, HSV: converted to RGB;
- EXIF orientation is applied, so the coded image is upright;
- refused with a message: float images, 32-bit integer images beyond 16 bits, animations.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lic.errors import FormatError, InputError


@dataclass
class SourceImage:
    rgb: np.ndarray  # H x W x 3, uint8
    alpha: np.ndarray | None  # H x W, uint8
    grey: bool
    bit_depth: int  # of the source: 8 or 16

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _from_16bit(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _open(path: Path) -> tuple[Image.Image, int]:
    """The loaded image and its source bit depth (read before loading clears the tiles)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    try:
        with warnings.catch_warnings():
            # lic's own limit (lic.api.MAX_PIXELS, --max-pixels) decides what is too large;
            # Pillow's warning above 89 megapixels would only be noise on stderr.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        bit_depth = _source_bit_depth(image)
        image.load()
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image that Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: cannot read the image ({e})") from None
    if getattr(image, "n_frames", 1) > 1:
        raise InputError(f"{path}: animated images are not supported ({image.n_frames} frames)")
    return image, bit_depth


def _source_bit_depth(image: Image.Image) -> int:
    rawmodes = [t[3] if isinstance(t[3], str) else t[3][0] for t in getattr(image, "tile", []) or []]
    sixteen = image.mode.startswith("I;16") or any(";16" in str(r) for r in rawmodes)
    return 16 if sixteen else 8


def from_pil(image: Image.Image, name: str = "image", bit_depth: int | None = None) -> SourceImage:
    if bit_depth is None:
        bit_depth = _source_bit_depth(image)
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if image.width == 0 or image.height == 0:
        raise InputError(f"{name}: the image is empty")
    if mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode)
    elif mode == "PA":
        mode, image = "RGBA", image.convert("RGBA")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise InputError(f"{name}: integer images beyond 16 bits are not supported")
        sixteen = bit_depth == 16 or mode.startswith("I;16") or values.max(initial=0) > 255
        grey = _from_16bit(values) if sixteen else values.astype(np.uint8)
        return SourceImage(np.repeat(grey[..., None], 3, axis=2), None, True, 16 if sixteen else 8)
    if mode == "F":
        raise InputError(f"{name}: floating-point images are not supported")
    if mode in ("1", "L"):
        grey = np.asarray(image.convert("L"))
        return SourceImage(np.repeat(grey[..., None], 3, axis=2), None, True, bit_depth)
    if mode == "LA":
        la = np.asarray(image)
        return SourceImage(np.repeat(la[..., :1], 3, axis=2), la[..., 1].copy(), True, bit_depth)
    if mode == "RGBA":
        rgba = np.asarray(image)
        return SourceImage(rgba[..., :3].copy(), rgba[..., 3].copy(), False, bit_depth)
    if mode != "RGB":
        image = image.convert("RGB")
    return SourceImage(np.asarray(image).copy(), None, False, bit_depth)


def from_array(array: np.ndarray) -> SourceImage:
    if array.dtype != np.uint8:
        raise InputError(f"arrays must be uint8 (got {array.dtype})")
    if 0 in array.shape[:2]:
        raise InputError(f"the image is empty (shape {array.shape})")
    if array.ndim == 2:
        return SourceImage(np.repeat(array[..., None], 3, axis=2), None, True, 8)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        alpha = array[..., 3].copy() if array.shape[2] == 4 else None
        return SourceImage(array[..., :3].copy(), alpha, False, 8)  # ours: writable, contiguous
    raise InputError(f"arrays must be H x W, H x W x 3 or H x W x 4 (got shape {array.shape})")


def load_image(source: "str | Path | Image.Image | np.ndarray | SourceImage") -> SourceImage:
    if isinstance(source, SourceImage):
        return source
    if isinstance(source, np.ndarray):
        return from_array(source)
    if isinstance(source, Image.Image):
        return from_pil(source)
    path = Path(source)
    image, bit_depth = _open(path)
    with image:
        return from_pil(image, str(path), bit_depth)


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None, grey: bool) -> Image.Image:
    image = Image.fromarray(rgb, "RGB")
    if grey:
        image = image.convert("L")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    return image


def pack_alpha(alpha: np.ndarray) -> bytes:
    return zlib.compress(alpha.tobytes(), 9)


def unpack_alpha(data: bytes, height: int, width: int) -> np.ndarray:
    """Inflates at most one byte more than the image needs: a stream that would inflate to
    gigabytes (a decompression bomb) costs no more memory than an honest one."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, height * width + 1)
    except zlib.error:
        raise FormatError("the alpha stream is corrupted") from None
    if len(raw) != height * width or not inflater.eof:
        raise FormatError("the alpha stream does not match the image size")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width)
