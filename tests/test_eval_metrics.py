"""Metrics on cases with known answers; LPIPS through its real code path without downloads."""

import math

import numpy as np
import pytest
import torch

from lic.eval import metrics, perceptual
from helpers import photo_like


def test_psnr_of_identical_images_is_capped():
    a = photo_like(32, 32)
    assert metrics.psnr(a, a) == metrics.PSNR_CAP == 100.0
    assert metrics.y_psnr(a, a) == metrics.PSNR_CAP


def test_known_mse_gives_known_psnr():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + np.uint8(5)  # MSE 25
    assert metrics.mse(a, b) == 25.0
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))  # 34.15 dB
    # A change of 5 in every channel changes luma by 5 (the weights sum to 1): same PSNR.
    assert metrics.y_psnr(a, b) == pytest.approx(metrics.psnr(a, b))


def test_mse_over_row_blocks_is_the_whole_image_mean():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (3 * metrics._MSE_ROWS + 5, 7, 3), dtype=np.uint8) for _ in range(2))
    assert metrics.mse(a, b) == float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_y_psnr_weighs_channels_by_bt601():
    a = np.full((8, 8, 3), 100, np.uint8)
    blue = a.copy()
    blue[..., 2] += 10  # luma moves by 0.114 * 10
    assert metrics.y_psnr(a, blue) == pytest.approx(10 * math.log10(255**2 / 1.14**2))
    assert metrics.psnr(a, blue) == pytest.approx(10 * math.log10(255**2 / (100 / 3)))


def test_ms_ssim_of_identical_images_is_one():
    a = photo_like(176, 168)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="160"):
        metrics.ms_ssim(a[:100], a[:100])


def test_weight_free_perceptual_metrics():
    a, b = photo_like(64, 64, seed=1), photo_like(64, 64, seed=2)
    same = {name: f(a, a) for name, f in perceptual.WEIGHT_FREE.items()}
    assert same["dss"] == pytest.approx(1, abs=1e-4) and same["haarpsi"] == pytest.approx(1, abs=1e-4)
    assert same["gmsd"] == pytest.approx(0, abs=1e-4)
    assert perceptual.WEIGHT_FREE["haarpsi"](a, b) < 1 and perceptual.WEIGHT_FREE["gmsd"](a, b) > 0
    assert perceptual.WEIGHT_FREE["dss"](a[:16, :16], b[:16, :16]) is None  # undefined below 32 px


def test_lpips_with_a_random_backbone():
    lpips = perceptual.load_lpips(random_backbone=True)
    a, b = photo_like(64, 48, seed=1), photo_like(64, 48, seed=2)
    assert lpips(a, a) == pytest.approx(0, abs=1e-6)
    assert lpips(a, b) > 0
    assert lpips(a[:16], b[:16]) is None  # too small for AlexNet


def test_lpips_is_skipped_without_cached_weights_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("tried to download"))
    assert perceptual.backbone_checkpoint() == tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert perceptual.load_lpips() is None
    assert "never downloads" in perceptual.missing_backbone_note()


def test_lpips_loads_the_backbone_from_the_torch_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with torch.device("meta"):  # torchvision's own layout, without initialising 61M weights
        layout = torchvision.models.alexnet().state_dict()
    state = {k: torch.randn(v.shape) for k, v in layout.items() if k.startswith("features.")}
    path = perceptual.backbone_checkpoint()
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    lpips = perceptual.load_lpips()
    assert torch.equal(lpips.model.net.state_dict()["slice2.3.weight"], state["features.3.weight"])
    a = photo_like(40, 40)
    assert lpips(a, a) == pytest.approx(0, abs=1e-6)
