"""Encoder effort (`lic.codecs.refine`): refined latents make ordinary, smaller-cost files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lic
from helpers import photo_like, run_lic
from lic import models
from lic.codecs.base import as_pixels
from lic.codecs.refine import Refiner, coded_bits
from lic.errors import InputError


@pytest.fixture(scope="module")
def shipped_q2():
    return models.load_codec(models.find("hyperprior", 2).path, "cpu", 2)


def _cost(data: bytes, rgb: np.ndarray, lmbda: float) -> float:
    """The model's own objective λ·255²·MSE + bpp, from a file's bytes and its decoded pixels."""
    decoded = np.asarray(lic.decompress(data).convert("RGB")).astype(np.float64)
    mse = np.mean((decoded - rgb.astype(np.float64)) ** 2)
    return lmbda * mse + 8 * len(data) / (rgb.shape[0] * rgb.shape[1])


def test_effort_0_writes_todays_bytes():
    rgb = photo_like(70, 90, seed=3)
    assert lic.compress(rgb, quality=2, effort=0) == lic.compress(rgb, quality=2)


def test_effort_1_lowers_the_models_own_cost_of_a_decodable_file(shipped_q2):
    rgb = photo_like(64, 128, seed=1)
    torch.manual_seed(0)
    plain = lic.compress(rgb, quality=2)
    refined = lic.compress(rgb, quality=2, effort=1)
    assert refined != plain
    assert _cost(refined, rgb, shipped_q2.lmbda) < _cost(plain, rgb, shipped_q2.lmbda)


def test_progress_reports_rising_steps_with_rate_and_psnr():
    steps = []
    lic.compress(photo_like(64, 64, seed=2), quality=2, effort=1, progress=steps.append)
    assert steps and [s.step for s in steps] == sorted({s.step for s in steps})
    assert all(s.step <= s.total and s.bpp > 0 and 10 < s.psnr < 60 for s in steps)


def test_table_bit_costs_match_the_range_coded_size(shipped_q2):
    x = as_pixels(photo_like(128, 192, seed=4))
    a = shipped_q2.analyse(x)
    refiner = Refiner(shipped_q2)
    y_bits = float(coded_bits(a["y"], a["index"], refiner.y_bits))
    coded = shipped_q2.latent.streams(a).streams
    assert abs(len(coded[1]) * 8 - y_bits) <= 64 + 0.01 * y_bits
    assert abs(len(coded[0]) * 8 - refiner.z_bits_of(a)) <= 64 + 0.01 * len(coded[0]) * 8


def test_out_of_range_rates_are_flagged_by_coded_bits(shipped_q2):
    """A value far outside its table costs its escape too, so refinement never drifts there."""
    index = torch.full((1, 1, 1, 2), 10, dtype=torch.uint8)
    refiner = Refiner(shipped_q2)
    near, far = (float(coded_bits(torch.tensor([[[[0.0, v]]]]), index, refiner.y_bits)) for v in (1.0, 5000.0))
    assert far > near + 10


@pytest.mark.parametrize("effort", [-1, 4])
def test_effort_out_of_range_is_an_input_error(effort):
    with pytest.raises(InputError, match="effort must be 0..3"):
        lic.compress(photo_like(64, 64), quality=2, effort=effort)


def test_effort_needs_a_model_with_a_lambda(tiny_model):
    with pytest.raises(InputError, match="records its lambda"):
        lic.compress(photo_like(64, 64), quality=2, model=str(tiny_model), effort=1)


def test_the_float_h_s_copy_follows_the_integer_h_s(shipped_q2):
    """The joint (y, z) rounds steer z through `soft_h_s`: it must give the integer network's
    outputs up to its roundings (scale indices within a step, means within a few 1/16)."""
    from lic.codecs.latent.factorized import Z_STEP
    from lic.codecs.refine import float_layers, soft_h_s

    a = shipped_q2.analyse(as_pixels(photo_like(128, 128, seed=5)))
    z16 = a["z"] / Z_STEP + shipped_q2.latent.z.medians16
    exact = shipped_q2.latent.h_s(z16)
    soft = soft_h_s(float_layers(shipped_q2.latent.h_s, torch.device("cpu")), z16.float()).double()
    M = shipped_q2.M
    inside = (exact[:, :M] > 0) & (exact[:, :M] < 63)  # the codec clips indices to the table
    assert (soft[:, :M] - exact[:, :M])[inside].abs().max() < 1.5
    assert (soft[:, M:] - exact[:, M:]).abs().quantile(0.99) < 4


@pytest.mark.slow
def test_effort_2_joint_rounds_write_files_that_decode_to_a_lower_cost(shipped_q2):
    rgb = photo_like(64, 64, seed=6)
    torch.manual_seed(0)
    refined = lic.compress(rgb, quality=2, effort=2)
    assert _cost(refined, rgb, shipped_q2.lmbda) < _cost(lic.compress(rgb, quality=2), rgb, shipped_q2.lmbda)


def test_cli_effort_writes_a_file_any_decoder_reads(tmp_path):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.fromarray(photo_like(64, 96, seed=8)).save(src)
    result = run_lic("encode", str(src), "-q", "2", "--effort", "1", "-o", str(tmp_path / "a.lic"))
    assert result.exit_code == 0 and "PSNR" in result.output
    assert lic.read_header((tmp_path / "a.lic").read_bytes()).step == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_effort_on_a_gpu_writes_a_file_the_cpu_decodes_to_the_same_pixels(shipped_q2):
    rgb = photo_like(128, 192, seed=12)
    data = lic.compress(rgb, quality=2, effort=2, device="cuda")
    on_cpu = np.asarray(lic.decompress(data))
    assert np.array_equal(on_cpu, np.asarray(lic.decompress(data, device="cuda")))
    assert _cost(data, rgb, shipped_q2.lmbda) < _cost(lic.compress(rgb, quality=2), rgb, shipped_q2.lmbda)
