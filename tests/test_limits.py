"""Work and memory are bounded by what the header allows: pixel limit, padding, alpha bombs."""

from __future__ import annotations

import time
import tracemalloc
import zlib

import numpy as np
import pytest

import lic
from helpers import photo_like, run_lic
from lic import bitstream, models
from lic.bitstream import Header
from lic.errors import FormatError, ResourceError
from lic.imageio import unpack_alpha


def _claiming(width: int, height: int, pad: int = 0, streams=(b"\0" * 8, b"\0" * 8)) -> bytes:
    """A file with a valid CRC whose header claims `width` x `height` for the zoo's q1 model."""
    model = models.find("hyperprior", 1)
    return bitstream.pack(Header(1, 1, model.hash, bytes(4), width, height, pad, pad), list(streams))


def test_an_absurd_size_is_refused_from_the_header(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match="65535x65535 image .* over the limit"):
        lic.decompress(_claiming(65535, 65535))
    assert time.perf_counter() - t0 < 5
    path = tmp_path / "bomb.lic"
    path.write_bytes(_claiming(65535, 65535))
    r = run_lic("decode", str(path))
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "--max-pixels" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.lic"]


def test_the_limit_can_be_raised_and_lowered(monkeypatch):
    image = photo_like(40, 50)
    with pytest.raises(ResourceError):
        lic.compress(image, quality=1, max_pixels=40 * 50 - 1)
    data = lic.compress(image, quality=1, max_pixels=40 * 50)
    with pytest.raises(ResourceError):
        lic.decompress(data, max_pixels=1999)
    monkeypatch.setattr(lic.api, "MAX_PIXELS", 1999)
    with pytest.raises(ResourceError):
        lic.decompress(data)
    assert lic.decompress(data, max_pixels=2000).size == (50, 40)


def test_padding_beyond_the_stride_is_refused():
    with pytest.raises(FormatError, match="impossible image size"):
        lic.decompress(_claiming(1, 1, pad=64 * 1000 - 1))


def test_alpha_bombs_are_not_inflated():
    bomb = zlib.compress(bytes(64 << 20), 9)  # 64 MiB of zeros in ~65 kB
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="alpha"):
            unpack_alpha(bomb, 64, 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    alpha = np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)
    assert np.array_equal(unpack_alpha(zlib.compress(alpha.tobytes()), 64, 64), alpha)
    with pytest.raises(FormatError):  # a stream that holds more than the image, then stops
        unpack_alpha(zlib.compress(alpha.tobytes() + b"x"), 64, 64)


def test_pillows_bomb_warning_is_not_printed(tmp_path, monkeypatch, recwarn):
    from PIL import Image

    path = tmp_path / "big.png"
    Image.fromarray(photo_like(40, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 2000 pixels: over it, under twice it
    lic.compress(path, quality=1)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
