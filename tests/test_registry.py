"""The registry is the one place a codec family is declared: a toy family registered here
trains, exports, encodes and decodes through the `lic` command, and no other file knows it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

import lic
from helpers import photo_folder, photo_like, run_lic
from lic import codec_ids
from lic.codecs import registry
from lic.codecs.registry import Family


@pytest.fixture
def toy_family():
    family = registry.register(Family("toy", "toy_family:ToyCodec", "toy_family:ToyTrainConfig", export="toy_family"))
    codec_ids.register("toy", 250, "image")
    yield family
    registry.unregister("toy")
    codec_ids.unregister("toy")


def test_a_family_registered_in_one_place_trains_exports_encodes_and_decodes_through_the_cli(
        toy_family, tmp_path):
    data = photo_folder(tmp_path / "train", ("a.png", 48, 64), ("b.png", 40, 40))
    r = run_lic("train", data, "--model", "toy", "--out", tmp_path / "run", "--set", "steps=30")
    assert r.exit_code == 0, r.output
    exported = tmp_path / "toy.safetensors"
    r = run_lic("export", tmp_path / "run" / "weights.safetensors", "--model", "toy", "-q", 1,
                "--calibration", data, "-o", exported)
    assert r.exit_code == 0, r.output
    assert abs(float(load_file(exported)["gain"]) - 1) < 0.4  # trained: it starts at 0.5
    source = photo_like(36, 52, seed=9)
    Image.fromarray(source).save(tmp_path / "in.png")
    r = run_lic("encode", tmp_path / "in.png", "-q", 1, "--model", exported, "-o", tmp_path / "in.lic")
    assert r.exit_code == 0, r.output
    assert lic.read_header((tmp_path / "in.lic").read_bytes()).codec_name == "toy"
    r = run_lic("decode", tmp_path / "in.lic", "--model", exported, "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.output
    decoded = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    # the block means, as the trained gain keeps them: within a few grey levels of the source's
    blocks = source[:32, :48].reshape(4, 8, 6, 8, 3).mean(axis=(1, 3))
    assert np.abs(decoded[:32, :48].reshape(4, 8, 6, 8, 3)[:, 0, :, 0] - blocks).max() <= 3


def test_families_are_named_once_and_the_toy_is_gone_after_its_test():
    assert registry.names() == ("hyperprior", "vq", "video")
    assert codec_ids.by_id(250) is None
