"""The Python API: `compress` an image to .lic bytes, `decompress` them back.

    import lic
    data = lic.compress("photo.png", quality=3)      # bytes of a .lic file
    image = lic.decompress(data)                      # a PIL image
    header = lic.read_header(data)                    # codec, quality, size, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from lic import bitstream, models
from lic.bitstream import FLAG_16BIT, FLAG_ALPHA, FLAG_GREY, Header
from lic import codec_ids
from lic.codecs.base import Codec, Encoded, as_pixels, pad_to_multiple, to_device
from lic.errors import FormatError, InputError, ModelError, ResourceError
from lic.imageio import SourceImage, load_image, pack_alpha, to_pil, unpack_alpha

if TYPE_CHECKING:
    from lic.codecs.refine import Progress, Refiner

#: The largest image (in pixels) that is encoded or decoded unless
#: the caller passes a larger `max_pixels` (`--max-pixels`), like Pillow's MAX_IMAGE_PIXELS.
#: A header is checked against it before anything is allocated for the image, so a file
#: that claims 65535x65535 is refused at once. 2**27 is about 134 megapixels (12000x8000,
#: 96 megapixels, encodes and decodes in under 4 GB: README, "Reliability").
MAX_PIXELS = 1 << 27


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    """A ResourceError if a `width` x `height` image (padded) is over the pixel limit."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ResourceError(
            f"a {width}x{height} image ({width * height / 1e6:.1f} megapixels) is over the limit of "
            f"{limit / 1e6:.1f} megapixels (raise it with --max-pixels or lic.api.MAX_PIXELS)"
        )


def compress(
    image: "str | Path | Image.Image | np.ndarray | SourceImage",
    quality: int = 3,
    model: str = "hyperprior",
    device: str = "cpu",
    max_pixels: int | None = None,
    effort: int = 0,
    progress: "Progress | None" = None,
) -> bytes:
    """Encodes an image (path, PIL image or uint8 array) into the bytes of a .lic file.

    effort 1..3 (hyperprior models) spends more encoding time on smaller files for the same
    quality (`lic.codecs.refine`); the files decode as any other. `progress` is called with
    each `lic.codecs.refine.Step` of the refinement."""
    source = load_image(image)
    check_pixels(source.width, source.height, max_pixels)
    model_file = models.find(model, quality)
    codec = models.load_codec(model_file.path, str(to_device(device)), quality)
    return encode_with(codec, source, quality, model_file.hash, effort, progress)


def encode_with(codec: Codec, source: SourceImage, quality: int, model_hash: bytes, effort: int = 0,
                progress: "Progress | None" = None, step: int = 0) -> bytes:
    """The container bytes for `source` coded by an already-loaded codec (at `effort`, or
    with quantisation step code `step`: hyperprior rate control, `lic.rate`).

    The codec gets 8-bit pixels and converts them tile by tile: a float32 copy of a
    24-megapixel image alone would be 0.3 GB (and twice that while it is made)."""
    if effort and step:
        raise InputError("--effort and rate targets cannot be combined yet")
    x = pad_to_multiple(as_pixels(source.rgb), codec.stride)[0]
    if effort:
        encoded = refiner_for(codec, effort).encode(x, source.height, source.width, effort, progress)
    elif step:
        encoded = codec.encode(x, step)
    else:
        encoded = codec.encode(x)
    return container(codec, source, quality, model_hash, encoded)


def container(codec: Codec, source: SourceImage, quality: int, model_hash: bytes, encoded: Encoded) -> bytes:
    """The .lic bytes for `source`'s streams `encoded` by `codec`."""
    pad_bottom, pad_right = (-source.height) % codec.stride, (-source.width) % codec.stride
    flags = (FLAG_GREY if source.grey else 0) | (FLAG_16BIT if source.bit_depth == 16 else 0)
    streams = list(encoded.streams)
    if source.alpha is not None:
        flags |= FLAG_ALPHA
        streams.append(pack_alpha(source.alpha))
    header = Header(codec_ids.codec_id(codec.family), quality, model_hash, encoded.digest,
                    source.width, source.height, pad_bottom, pad_right, flags, step=encoded.step)
    return bitstream.pack(header, streams)


def refiner_for(codec: Codec, effort: int) -> "Refiner":
    """The refiner of a loaded hyperprior codec (an InputError for an effort it has not)."""
    from lic.codecs.hyperprior import HyperpriorCodec
    from lic.codecs.refine import MAX_EFFORT, Refiner

    if not 0 <= effort <= MAX_EFFORT:
        raise InputError(f"effort must be 0..{MAX_EFFORT}, not {effort}")
    if not isinstance(codec, HyperpriorCodec) or codec.lmbda is None:
        raise InputError(f"effort {effort} needs a hyperprior model that records its lambda")
    if getattr(codec, "refiner", None) is None:
        codec.refiner = Refiner(codec)  # built once per loaded codec: a float32 copy of g_s
    return codec.refiner


def read_header(data: bytes) -> Header:
    return bitstream.unpack(data)[0]


def _model_for(header: Header, model: str | None) -> models.ModelFile:
    if model is not None:
        model_file = models.find(model, header.quality)
        if model_file.hash != header.model_hash:
            raise ModelError(
                f"the file was encoded with model {header.model_hash.hex()}, "
                f"but {model} (quality {header.quality}) is {model_file.hash.hex()}"
            )
        return model_file
    model_file = models.find_by_hash(header.model_hash)
    if model_file is None:
        raise ModelError(
            f"the file needs {header.codec_name} model {header.model_hash.hex()} "
            f"(quality {header.quality}), which is not installed; pass --model PATH"
        )
    return model_file


def decompress(
    data: bytes, model: str | None = None, device: str = "cpu", max_pixels: int | None = None, fast: bool = False
) -> Image.Image:
    """Decodes .lic bytes to a PIL image (RGB, L, RGBA or LA, as the source was).

    Images over `max_pixels` (default `MAX_PIXELS`) are refused from the header alone.
    `fast`: the hyperprior's synthesis in float32, several times faster; a few pixel values
    per million differ from the exact decode by one grey level, and may differ between
    machines (README, "Speed"). Codecs without a fast path decode exactly."""
    header, streams = bitstream.unpack(data)
    check_pixels(header.width, header.height, max_pixels)  # padding is checked against the stride
    model_file = _model_for(header, model)
    codec = models.load_codec(model_file.path, str(to_device(device)), header.quality)
    if codec.family != header.codec_name:
        raise ModelError(f"model {model_file.name} is not a {header.codec_name} model")
    return decode_with(codec, header, streams, fast)


def decode_with(codec: Codec, header: Header, streams: list[bytes], fast: bool = False) -> Image.Image:
    """Decodes parsed container contents with an already-loaded codec (`fast`: see `decompress`)."""
    height, width = header.height + header.pad_bottom, header.width + header.pad_right
    if height % codec.stride or width % codec.stride or max(header.pad_bottom, header.pad_right) >= codec.stride:
        raise FormatError("the file header is corrupted (impossible image size)")
    n_codec = len(streams) - int(header.has_alpha)
    # Damaged data raises FormatError where it is found (the entropy decoders, the stream
    # checks); nothing else is taken for corruption. Running out of memory is said as such.
    try:
        options = {"fast": True} if fast and getattr(codec, "has_fast_path", False) else {}
        x_hat = codec.decode(Encoded(streams[:n_codec], header.digest, header.step), height, width, **options)
    except (MemoryError, torch.cuda.OutOfMemoryError):
        raise ResourceError(f"out of memory decoding a {header.width}x{header.height} image") from None
    rgb = x_hat[0, :, : header.height, : header.width].permute(1, 2, 0).numpy()
    alpha = unpack_alpha(streams[-1], header.height, header.width) if header.has_alpha else None
    return to_pil(rgb, alpha, bool(header.flags & FLAG_GREY))
