"""Image quality metrics on uint8 RGB arrays (H x W x 3), the form decoded images take.

Pixel-fidelity metrics live here (PSNR on RGB and on BT.601 luma, MS-SSIM); the learned and
perceptual ones (LPIPS, DSS, HaarPSI, GMSD) are in `perceptual.py`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim

#: PSNR of identical images is infinite; reports cap it here so averages stay finite.
PSNR_CAP = 100.0


_MSE_ROWS = 256  # rows per block in `mse`


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference, a block of rows at a time: whole-image float64 copies of two
    24-megapixel images (`lic encode`'s check decode) would take 1.7 GB. For 8-bit pixels
    every partial sum is an integer below 2**53, so the blocks give the whole-image mean."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    total = 0.0
    for row in range(0, a.shape[0], _MSE_ROWS):
        diff = a[row : row + _MSE_ROWS].astype(np.float64) - b[row : row + _MSE_ROWS]
        total += float(np.square(diff).sum())
    return total / a.size


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all channels, capped at `PSNR_CAP` (identical images)."""
    err = mse(a, b)
    return PSNR_CAP if err == 0 else min(PSNR_CAP, 10 * math.log10(peak**2 / err))


#: BT.601 luma weights (Y' of Y'CbCr), applied to the full-range 0-255 RGB values.
BT601_LUMA = np.array([0.299, 0.587, 0.114])


def y_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of BT.601 luma, kept in float (not rounded to 8 bits, so no extra error is added);
    the channel the human eye and the video-coding literature weigh most. Capped like `psnr`."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return psnr(a.astype(np.float64) @ BT601_LUMA, b.astype(np.float64) @ BT601_LUMA)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, 5 scales); images need sides above 160 pixels.

    Computed in float32: 8x faster on CPU than float64, and the values differ by under 1e-6.
    """
    if min(a.shape[:2]) <= 160:
        raise ValueError("MS-SSIM needs both image sides above 160 pixels")
    return float(_ms_ssim(_tensor(a), _tensor(b), data_range=255.0))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM as -10 log10(1 - MS-SSIM), the usual way to plot it."""
    return math.inf if value >= 1 else -10 * math.log10(1 - value)
