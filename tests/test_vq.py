"""The VQ codec: exact index round trip, integer context model, decoding that is the same
everywhere, the container and the API with a tiny model built here."""

import hashlib
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from lic import bitstream
from lic.api import decode_with, encode_with
from lic.codecs.base import Encoded, as_pixels, pad_to_multiple, to_input
from lic.codecs.vq import FIXED_LENGTH
from lic.export.vq import export
from lic.codecs.vq_model import VQArchitecture, VQAutoencoder
from lic.entropy.index_context import IndexContextModel, pack_fixed_length, static_table, unpack_fixed_length
from lic.errors import DeterminismError, FormatError, ModelError
from lic.imageio import load_image
from lic.models import load_codec, save_model_file
from lic.train.vq_context import fit_context_model, index_maps
from lic.train.vq_levels import encode_latents, spherical_kmeans
from helpers import assert_same_pixels_everywhere, photo_like, with_other_digest

ARCH = VQArchitecture(channels=(8, 8, 8, 8), blocks=(1, 1, 1, 1), code_dim=4, codebook_size=64)
SIZES = {1: 32, 2: 64}


def build_tiny(seed: int) -> tuple[VQAutoencoder, dict, dict]:
    """An untrained model with k-means-initialised codes, two levels and fitted context models."""
    torch.manual_seed(seed)
    model = VQAutoencoder(ARCH)
    images = [torch.from_numpy(photo_like(96, 128, seed=s)).permute(2, 0, 1).contiguous() for s in range(4)]
    model.train()
    model(torch.stack(images).float() / 255)  # initialises the codebook by k-means
    model.eval()
    latents = encode_latents(model, images, torch.device("cpu"))
    full = model.codebook.detach().clone()
    codebooks = {1: spherical_kmeans(full, torch.ones(64), 32, seed=seed), 2: full}
    contexts = {level: fit_context_model(index_maps(latents, codebook), codebook.shape[0], rank=4, min_steps=30)
                for level, codebook in codebooks.items()}
    return model, codebooks, contexts


def tiny_config(name: str = "tinyvq") -> dict:
    return {"name": name, "family": "vq", "quality": 2, "levels": {str(k): v for k, v in SIZES.items()}, **ARCH.to_config()}


@pytest.fixture(scope="module")
def vq_model(tmp_path_factory):
    model, codebooks, contexts = build_tiny(0)
    return save_model_file(tmp_path_factory.mktemp("vq") / "tinyvq.safetensors", export(model, codebooks, contexts),
                           tiny_config()).path


@pytest.fixture(scope="module")
def codec(vq_model):
    return load_codec(vq_model, "cpu")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return photo_like(70, 130, seed=3)


@pytest.fixture(scope="module")
def context_model() -> IndexContextModel:
    rng = np.random.default_rng(0)
    maps = [np.repeat(np.repeat(rng.integers(0, 50, (6, 8)), 2, axis=0), 2, axis=1) for _ in range(6)]
    return fit_context_model(maps, 50, rank=4, epochs=1, min_steps=60)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (2, 2), (9, 13), (40, 60)])
def test_index_maps_roundtrip_exactly(context_model, shape):
    indices = np.random.default_rng(shape[0] * 100 + shape[1]).integers(0, 50, shape)
    stream, digest = context_model.encode(indices)
    decoded, decoded_digest = context_model.decode(stream, *shape)
    assert np.array_equal(decoded, indices) and decoded_digest == digest


def test_context_model_predicts_repeated_neighbours(context_model):
    """Maps of 2x2 blocks: the context model must beat the static table on them."""
    rng = np.random.default_rng(9)
    indices = np.repeat(np.repeat(rng.integers(0, 50, (20, 20)), 2, axis=0), 2, axis=1)
    static = fit_context_model([indices], 50, rank=4, epochs=0)  # prior only
    assert len(context_model.encode(indices)[0]) < 0.9 * len(static.encode(indices)[0])


def test_context_tables_are_deterministic():
    rng = np.random.default_rng(1)
    maps = [rng.integers(0, 40, (12, 10)) for _ in range(3)]
    a, b = (fit_context_model(maps, 40, rank=4, epochs=1, seed=5, min_steps=10) for _ in range(2))
    assert a.digest() == b.digest()
    positions = np.argwhere(np.ones((12, 10), bool))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = a.frequencies(maps[0], positions, 2)
    finally:
        torch.set_num_threads(threads)
    rows = a.frequencies(maps[0], positions, 2)
    assert np.array_equal(rows, single) and np.array_equal(rows, np.round(rows)) and rows.min() >= 1
    assert np.array_equal(rows[5:9], a.frequencies(maps[0], positions[5:9], 2))


@pytest.mark.parametrize("bits, shape", [(1, (1, 1)), (5, (3, 7)), (12, (32, 48)), (16, (2, 3))])
def test_fixed_length_roundtrip(bits, shape):
    indices = np.random.default_rng(bits).integers(0, 1 << bits, shape)
    data = pack_fixed_length(indices, bits)
    assert len(data) == (indices.size * bits + 7) // 8
    assert np.array_equal(unpack_fixed_length(data, shape, bits), indices)
    with pytest.raises(ValueError):
        unpack_fixed_length(data + b"\0", shape, bits)
    with pytest.raises(ValueError):
        pack_fixed_length(indices + (1 << bits), bits)


def test_codec_writes_the_shorter_index_coding(codec, image):
    """A map the context model codes badly (noise) falls back to fixed length; either way the
    stream is never longer than log2(K) bits per index plus the mode byte."""
    noise = np.random.default_rng(3).random((1, 3, 160, 160)).astype(np.float32)
    modes = set()
    for x in (pad_to_multiple(to_input(as_pixels(image)), codec.stride)[0], torch.from_numpy(noise)):
        for level in SIZES:
            c = codec.for_quality(level)
            indices = c.analyse(x)
            encoded = c.encode(x)
            context = len(c.contexts[level].encode(indices)[0])
            fixed = len(pack_fixed_length(indices, c.index_bits))
            assert len(encoded.streams[0]) == 1 + min(context, fixed)
            assert np.array_equal(c.decode_indices(encoded, *x.shape[-2:]), indices)
            modes.add(encoded.streams[0][0])
    assert FIXED_LENGTH in modes  # the fallback branch really ran
    forced = Encoded([bytes([FIXED_LENGTH]) + pack_fixed_length(indices, c.index_bits)], bytes(4))
    assert np.array_equal(c.decode_indices(forced, *x.shape[-2:]), indices)
    for bad in (Encoded([forced.streams[0][:-1]], bytes(4)), Encoded(forced.streams, b"\1\0\0\0"),
                Encoded([b"\7" + forced.streams[0][1:]], bytes(4))):
        with pytest.raises(FormatError):
            c.decode_indices(bad, *x.shape[-2:])


def test_static_table_is_a_valid_cdf():
    table = static_table(np.array([0, 5, 100, 1, 0]))
    freq = table.pmf(0)
    assert freq.size == 6 and freq.min() >= 1 and freq[-1] == 1 and freq.sum() == 2**16
    assert freq[2] == freq.max()


def test_codec_indices_roundtrip_and_decode(codec, image):
    x, _, _ = pad_to_multiple(to_input(as_pixels(image)), codec.stride)
    for level in SIZES:
        c = codec.for_quality(level)
        indices = c.analyse(x)
        assert indices.shape == (80 // 16, 144 // 16) and indices.max() < SIZES[level]
        encoded = c.encode(x)
        assert np.array_equal(c.decode_indices(encoded, *x.shape[-2:]), indices)
        assert torch.equal(c.decode(encoded, *x.shape[-2:]), c.synthesise(indices))


def test_same_pixels_across_threads_and_in_a_fresh_process(vq_model, image, tmp_path):
    data = lic.compress(image, quality=2, model=str(vq_model))
    assert_same_pixels_everywhere(data, vq_model, tmp_path)


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (64, 64), (300, 7)])
def test_api_roundtrips_any_size(vq_model, size):
    h, w = size
    data = lic.compress(photo_like(h, w), quality=2, model=str(vq_model))
    header = lic.read_header(data)
    assert (header.codec_name, header.width, header.height) == ("vq", w, h)
    assert lic.decompress(data, model=str(vq_model)).size == (w, h)


def test_alpha_survives(vq_model):
    rgba = np.dstack([photo_like(20, 30), np.full((20, 30), 7, np.uint8)])
    image = lic.decompress(lic.compress(Image.fromarray(rgba, "RGBA"), quality=2, model=str(vq_model)), model=str(vq_model))
    assert image.mode == "RGBA" and (np.asarray(image)[..., 3] == 7).all()


def test_every_level_writes_its_own_files(codec, vq_model, image):
    model_hash = hashlib.sha256(vq_model.read_bytes()).digest()[:4]
    source = load_image(image)
    for level in SIZES:
        data = encode_with(codec.for_quality(level), source, level, model_hash)
        header, streams = bitstream.unpack(data)
        assert header.quality == level and len(streams) == 1
        decoded = decode_with(codec.for_quality(header.quality), header, streams)
        assert decoded.size == (130, 70)
    with pytest.raises(ModelError, match="no level 3"):
        codec.for_quality(3)


def test_damaged_files_raise_one_line_format_errors(vq_model, image):
    data = lic.compress(image, quality=2, model=str(vq_model))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    for damaged in (data[:-1], data[: len(data) // 2], data[:10], bytes(flipped)):
        with pytest.raises(FormatError) as e:
            lic.decompress(damaged, model=str(vq_model))
        assert "\n" not in str(e.value)


def test_garbage_streams_with_a_valid_crc_are_refused(vq_model, image):
    data = bytearray(lic.compress(image, quality=2, model=str(vq_model)))
    header, streams = bitstream.unpack(bytes(data))
    data[-4 - len(streams[0]) : -4] = bytes(len(streams[0]))[:-1] + b"\x01"
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises((FormatError, DeterminismError)):
        lic.decompress(bytes(data), model=str(vq_model))


def test_a_decoder_deriving_other_probabilities_stops(vq_model, image, monkeypatch):
    # The untrained test model's context coding loses to fixed length: make it win.
    monkeypatch.setattr("lic.codecs.vq.pack_fixed_length", lambda indices, bits: bytes(1 << 16))
    data = lic.compress(image, quality=2, model=str(vq_model))
    assert bitstream.unpack(data)[1][0][0] == 0  # mode byte: context coded
    data = with_other_digest(data)
    with pytest.raises(DeterminismError, match="different entropy parameters"):
        lic.decompress(data, model=str(vq_model))


def test_wrong_models_are_named(vq_model, tiny_model, image, tmp_path):
    from safetensors.torch import load_file

    data = lic.compress(image, quality=2, model=str(vq_model))
    other = save_model_file(tmp_path / "other.safetensors", load_file(str(vq_model)), tiny_config("other"))
    with pytest.raises(ModelError, match="encoded with model"):
        lic.decompress(data, model=str(other.path))
    with pytest.raises(ModelError, match="not installed"):
        lic.decompress(data)
    hyper = lic.compress(image, quality=2, model=str(tiny_model))
    with pytest.raises(ModelError):
        lic.decompress(hyper, model=str(vq_model))


def test_the_api_codes_the_level_given_as_quality(vq_model, image):
    """Needs lic.api to select the level (`codec.for_quality(header quality)`)."""
    sizes = {}
    for level in SIZES:
        data = lic.compress(image, quality=level, model=str(vq_model))
        assert lic.read_header(data).quality == level
        assert lic.decompress(data, model=str(vq_model)).size == (130, 70)
        sizes[level] = len(data)
    with pytest.raises(ModelError, match="no quality 3"):
        lic.compress(image, quality=3, model=str(vq_model))
