"""Shared fixtures: a tiny randomly initialised hyperprior model file, a tiny video model, a
folder of training images.

The tiny model is untrained, so its pictures are poor, but every step of the real pipeline
(export, integer h_s, CDF tables, container) runs exactly as for a shipped model. Plain
helpers (images, paths, assertions) are in helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from helpers import photo_like
from lic.codecs.hyperprior_net import MeanScaleHyperprior
from lic.export.hyperprior import export
from lic import models
from lic.models import save_model_file


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = MeanScaleHyperprior(N=16, M=24)
    calibration = torch.from_numpy(photo_like(128, 128)).permute(2, 0, 1)[None].float() / 255
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_model_file(path, export(model, calibration), {"name": "tiny", "family": "hyperprior", "quality": 2, "N": 16, "M": 24})
    return path


@pytest.fixture(scope="session")
def tiny_codec(tiny_model):
    from lic.models import load_codec

    return load_codec(tiny_model, "cpu")


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Path:
    """A training folder: four photo-like images large enough for MS-SSIM (> 160 px) and one
    too small for a 64-pixel crop."""
    folder = tmp_path_factory.mktemp("train")
    for i in range(4):
        Image.fromarray(photo_like(168, 176, seed=i)).save(folder / f"{i}.png")
    Image.fromarray(photo_like(20, 20)).save(folder / "small.png")
    return folder


@pytest.fixture(scope="session")
def video_model(tmp_path_factory) -> Path:
    """A tiny untrained residual coder (N=8, M=12) with the zoo's hyperprior q1 for I-frames."""
    torch.manual_seed(0)
    net = MeanScaleHyperprior(8, 12)
    calibration = torch.rand(2, 3, 64, 64)
    intra = models.find("hyperprior", 1)
    config = {"name": "tinyvideo", "family": "video", "quality": 1, "N": 8, "M": 12, "block": 16,
              "motion_lambda": 24.0, "intra": {"name": intra.name, "quality": 1, "hash": intra.hash.hex()}}
    path = tmp_path_factory.mktemp("video") / "tinyvideo.safetensors"
    models.save_model_file(path, export(net, calibration), config)
    return path
