"""Shared fixtures: the `lic` command runner, and a tiny randomly initialised hyperprior model file.

The tiny model is untrained, so its pictures are poor, but every step of the real pipeline
(export, integer h_s, CDF tables, container) runs exactly as for a shipped model. Plain
helpers (images, paths, assertions) are in helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import photo_like
from lic.codecs.hyperprior_net import MeanScaleHyperprior
from lic.export.hyperprior import export
from lic.models import save_model_file


@pytest.fixture(scope="session")
def run_lic():
    """`run_lic(*args)` runs `lic ARGS` in this process (arguments may be paths or numbers) and
    returns click's Result: exit_code, output (stdout and stderr together)."""
    from typer.testing import CliRunner

    from lic.cli import app

    runner = CliRunner()
    return lambda *args, **kwargs: runner.invoke(app, [str(a) for a in args], **kwargs)


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
