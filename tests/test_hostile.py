"""What a hostile tester tried: each ends in one clear line, exit 1, and nothing lost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from helpers import assert_one_line_error, photo_like, run_lic, with_fixed_crc
from lic.errors import InputError, ModelError
from lic.models import save_model_file


def crafted(data: bytes) -> bytes:
    """`data` with its last stream all ones and a valid CRC: the entropy decoder rejects it."""
    last = lic.read_header(data).stream_lengths[-1]
    damaged = bytearray(data)
    damaged[-4 - last : -4] = b"\xff" * last
    return with_fixed_crc(damaged)


def test_a_batch_decode_goes_on_after_a_crafted_file(tmp_path, tiny_model):
    good = lic.compress(photo_like(48, 64), quality=2, model=str(tiny_model))
    for name, data in (("a", good), ("bad", crafted(good)), ("c", good)):
        (tmp_path / f"{name}.lic").write_bytes(data)
    out = tmp_path / "out"
    r = run_lic("decode", tmp_path / "a.lic", tmp_path / "bad.lic", tmp_path / "c.lic", "-o", out, "--model", tiny_model)
    assert r.exit_code == 1 and "1 of 3 files failed" in r.output, r.output
    assert f"{tmp_path / 'bad.lic'}: the entropy-coded data is corrupted" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["a.decoded.png", "c.decoded.png"]


@pytest.mark.parametrize("device", ["foo", "cuda:0", "meta", "cuda:x"])
def test_bad_devices_are_one_line(device, tmp_path, tiny_model):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    image = tmp_path / "p.png"
    Image.fromarray(photo_like(16, 16)).save(image)
    assert_one_line_error(run_lic("encode", image, "-q", 2, "--model", tiny_model, "--device", device), "device")
    assert not image.with_suffix(".lic").exists()


@pytest.mark.parametrize("config", [
    {"name": "x", "family": "hyperprior", "quality": 1},
    {"name": "x", "family": "hyperprior", "quality": 1, "N": 16, "M": 24},
    {"name": "x", "family": "vq", "quality": 1},
])
def test_a_model_file_without_weights_is_one_line(config, tmp_path):
    path = save_model_file(tmp_path / "empty.safetensors", {"unrelated": torch.zeros(1)}, config).path
    with pytest.raises(ModelError, match="not a complete"):
        lic.compress(photo_like(16, 16), quality=1, model=str(path))
    image = tmp_path / "p.png"
    Image.fromarray(photo_like(16, 16)).save(image)
    assert_one_line_error(run_lic("encode", image, "-q", 1, "--model", path), "not a complete")


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (0, 0), (0, 4, 4)])
def test_empty_arrays_are_input_errors(shape):
    with pytest.raises(InputError, match="empty"):
        lic.compress(np.zeros(shape, np.uint8))


def test_never_writes_over_an_input_even_with_force(tmp_path, tiny_model):
    image = tmp_path / "full.png"
    Image.fromarray(photo_like(16, 16)).save(image)
    before = image.read_bytes()
    r = run_lic("encode", image, "-o", image, "--force", "-q", 2, "--model", tiny_model)
    assert_one_line_error(r, "is an input of this command")
    assert image.read_bytes() == before


def test_two_inputs_for_one_output_are_refused_up_front(tmp_path, tiny_model):
    Image.fromarray(photo_like(16, 16)).save(tmp_path / "photo.png")
    Image.fromarray(photo_like(16, 16, seed=1)).save(tmp_path / "photo.jpg")
    r = run_lic("encode", tmp_path, "--force", "-q", 2, "--model", tiny_model)
    assert_one_line_error(r, "would both be written to")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo.png"]


def test_version():
    r = run_lic("--version")
    assert r.exit_code == 0 and r.output == f"lic {lic.__version__}\n"
