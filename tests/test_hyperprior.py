"""The hyperprior codec: exact symbol round trip and decoding that is the same everywhere."""

import hashlib

import numpy as np
import pytest
import torch

import lic
from lic import bitstream
from lic.codecs.base import as_pixels, pad_to_multiple, to_input
from lic.errors import DeterminismError
from helpers import assert_same_pixels_everywhere, photo_like, with_other_digest


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return photo_like(70, 130, seed=3)


def test_decoded_symbols_equal_the_encoders(tiny_codec, image):
    x, _, _ = pad_to_multiple(to_input(as_pixels(image)), tiny_codec.stride)
    analysed = tiny_codec.analyse(x)
    decoded = tiny_codec.decode_symbols(tiny_codec.encode(x), *x.shape[-2:])
    for key in ("z", "y", "index", "means"):
        assert torch.equal(decoded[key], analysed[key]), key
    assert torch.equal(
        tiny_codec.decode(tiny_codec.encode(x), *x.shape[-2:]),
        tiny_codec.synthesise(analysed["y"] + analysed["means"]),
    )


def test_escaped_latents_roundtrip(tiny_codec):
    """An image far from anything seen in calibration pushes latents outside the tables."""
    x = torch.zeros(1, 3, 64, 64)
    x[..., ::2, :] = 1.0
    analysed = tiny_codec.analyse(x)
    decoded = tiny_codec.decode_symbols(tiny_codec.encode(x), 64, 64)
    assert torch.equal(decoded["y"], analysed["y"]) and torch.equal(decoded["z"], analysed["z"])


@pytest.mark.slow
def test_same_pixels_twice_across_threads_and_in_a_fresh_process(tiny_model, image, tmp_path):
    data = lic.compress(image, quality=2, model=str(tiny_model))
    assert_same_pixels_everywhere(data, tiny_model, tmp_path)


def test_encoding_is_deterministic(tiny_model, image):
    assert lic.compress(image, quality=2, model=str(tiny_model)) == lic.compress(image, quality=2, model=str(tiny_model))


def test_a_decoder_deriving_other_parameters_stops_with_a_clear_error(tiny_model, image):
    data = with_other_digest(lic.compress(image, quality=2, model=str(tiny_model)))
    with pytest.raises(DeterminismError, match="different entropy parameters"):
        lic.decompress(data, model=str(tiny_model))


def test_header_describes_the_image(tiny_model, tiny_codec, image):
    data = lic.compress(image, quality=2, model=str(tiny_model))
    header, streams = bitstream.unpack(data)
    assert (header.codec_name, header.quality, header.width, header.height) == ("hyperprior", 2, 130, 70)
    assert (header.pad_bottom, header.pad_right) == (128 - 70, 192 - 130)
    assert header.model_hash == hashlib.sha256(tiny_model.read_bytes()).digest()[:4]
    assert len(streams) == 2 and header.stream_lengths == [len(s) for s in streams]
