"""`lic train --model video`: the P-frame residual coder, fine-tuned from image weights.

The residual coder is a mean-scale hyperprior (the image network, trained by the image loop
in `lic.train.hyperprior`) that learns from residual pictures instead of photos: for a pair
(reference, current) the sampler runs the codec's own motion estimation and overlapped-block
prediction and hands over  clip(current - prediction + 128) / 255. What changes from image
training is only that data stream and the exported config.

Pairs come from two sources:
- synthetic motion on still photos (the main source, `data`): the reference is the crop's
  surroundings under a random small affine warp, sometimes with a pasted patch that moves
  by itself (an occlusion), and JPEG-degraded as a decoded reference would be;
- real video (`sequences`, e.g. the Vimeo septuplets): consecutive or one-apart frames.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lic.codecs.hyperprior_net import MeanScaleHyperprior
from lic.video.codec import residual_picture
from lic.export.hyperprior import export, transform_moments
from lic.train.data import image_files
from lic.train.hyperprior import HyperpriorTrainConfig, train  # noqa: F401  (the registry's `train`)
from lic.video.motion import estimate, predict

__all__ = ["ResidualSampler", "VideoTrainConfig", "train"]

_CALIBRATION_SEED = 1234


@dataclass(kw_only=True)
class VideoTrainConfig(HyperpriorTrainConfig):
    intra_quality: int | None = None  # the image quality of I-frames (default: `quality`)
    sequences: str | None = None  # folders of consecutive frames (im1.png, im2.png, ...)
    sequence_share: float = 0.25  # share of pairs taken from `sequences` when given
    block: int = 32  # measured on BasketballPass at q1: 32x32 blocks cost ~100 B of vectors a frame, 16x16 ~350 B
    motion_lambda: float = 24.0
    crop: int = 128
    name: str = "video"
    data_parallel = False

    def __post_init__(self) -> None:
        if self.val_dir:
            raise ValueError("--val-dir: video models are validated on clips with `lic eval-video`")
        if self.crop % self.block:
            raise ValueError(f"--crop must be a multiple of the motion block ({self.block})")

    def model_config(self) -> dict:
        from lic import models

        intra_quality = self.intra_quality or self.quality
        intra = models.find("hyperprior", intra_quality)
        config = {**super().model_config(), "family": "video", "block": self.block, "motion_lambda": self.motion_lambda,
                  "intra": {"name": intra.name, "quality": intra_quality, "hash": intra.hash.hex()}}
        bits = self.weight_bits()
        return {**config, "weight_bits": bits} if bits else config

    def weight_bits(self) -> dict[str, int] | None:
        """The mixed-precision widths of the image model of the same quality (the one the
        residual coder is fine-tuned from), which `lic quantize` chose by measured sensitivity;
        None (float16) if that model is not quantized."""
        from lic import models

        return models.find("hyperprior", self.quality).config.get("weight_bits")

    def export_tensors(self, model: MeanScaleHyperprior, calibration: torch.Tensor) -> dict[str, torch.Tensor]:
        """Quantized like the image ladder (GPTQ rounding with moments of residual pictures)."""
        bits = self.weight_bits()
        if not bits:
            return export(model, calibration)
        return export(model, calibration, bits, transform_moments(model, calibration))

    def sampler(self, images: list[torch.Tensor], device: torch.device, seed: int, part: tuple[int, int]) -> "ResidualSampler":
        if part != (0, 1):
            raise ValueError("video training runs in one process")
        return ResidualSampler(images, sequence_folders(self.sequences), self, device, seed)

    def calibration(self, images: list[torch.Tensor]) -> torch.Tensor:
        return self.sampler(images, torch.device("cpu"), _CALIBRATION_SEED, (0, 1))()


def sequence_folders(root: str | None) -> list[list[Path]]:
    """Each folder under `root` that holds two or more frames: its frames in order."""
    if root is None:
        return []
    groups: dict[Path, list[Path]] = {}
    for path in image_files(Path(root)):
        groups.setdefault(path.parent, []).append(path)
    return [sorted(files, key=lambda p: (len(p.stem), p.stem)) for files in groups.values() if len(files) >= 2]


class ResidualSampler:
    """Batches of residual pictures, float [0, 1], [batch, 3, crop, crop]."""

    def __init__(self, images: list[torch.Tensor], sequences: list[list[Path]], cfg: VideoTrainConfig,
                 device: torch.device, seed: int) -> None:
        self.images, self.sequences, self.cfg, self.device = images, sequences, cfg, device
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> torch.Tensor:
        pictures = []
        for _ in range(self.cfg.batch):
            use_video = self.sequences and self.rng.random() < self.cfg.sequence_share
            reference, current = self._video_pair() if use_video else self._synthetic_pair()
            vectors = estimate(current, reference, self.cfg.block, lam=self.cfg.motion_lambda)
            pictures.append(residual_picture(current, predict(reference, vectors, self.cfg.block)))
        batch = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float().div_(255)
        return batch.to(self.device)

    def _video_pair(self) -> tuple[np.ndarray, np.ndarray]:
        frames = self.sequences[self.rng.integers(len(self.sequences))]
        gap = int(self.rng.integers(1, 3))
        t = int(self.rng.integers(len(frames) - min(gap, len(frames) - 1)))
        pair = [np.asarray(Image.open(frames[i]).convert("RGB")) for i in (t, min(t + gap, len(frames) - 1))]
        if self.rng.random() < 0.5:
            pair.reverse()
        c = self.cfg.crop
        h, w = pair[0].shape[:2]
        top, left = int(self.rng.integers(h - c + 1)), int(self.rng.integers(w - c + 1))
        reference, current = (p[top : top + c, left : left + c] for p in pair)
        return self._degrade(reference), current

    def _synthetic_pair(self) -> tuple[np.ndarray, np.ndarray]:
        c, margin = self.cfg.crop, self.cfg.crop // 4
        side = c + 2 * margin
        image = self._window(side)
        reference = _warp(image, self.rng)
        if self.rng.random() < 0.3:  # an object moving on its own, over the background
            patch_side = int(self.rng.integers(c // 8, c // 2))
            patch = self._window(patch_side)
            y, x = (int(v) for v in self.rng.integers(margin, margin + c - patch_side, 2))
            dy, dx = (int(v) for v in self.rng.integers(-8, 9, 2))
            image = image.copy()
            image[y : y + patch_side, x : x + patch_side] = patch
            ry, rx = np.clip([y + dy, x + dx], 0, side - patch_side)
            reference[ry : ry + patch_side, rx : rx + patch_side] = patch
        crop = (slice(margin, margin + c), slice(margin, margin + c))
        return self._degrade(reference[crop]), image[crop]

    def _window(self, side: int) -> np.ndarray:
        """A random side x side region (flipped half the time) of a random training image."""
        while True:
            image = self.images[self.rng.integers(len(self.images))]
            h, w = image.shape[1:]
            if min(h, w) >= side:
                break
        top, left = int(self.rng.integers(h - side + 1)), int(self.rng.integers(w - side + 1))
        window = image[:, top : top + side, left : left + side].permute(1, 2, 0).cpu().numpy()
        return np.ascontiguousarray(window[:, ::-1] if self.rng.random() < 0.5 else window)

    def _degrade(self, reference: np.ndarray) -> np.ndarray:
        """A decoded reference is smoother and noisier than its source: JPEG at quality 40..95."""
        buffer = io.BytesIO()
        Image.fromarray(reference).save(buffer, format="JPEG", quality=int(self.rng.integers(40, 96)))
        return np.asarray(Image.open(buffer).convert("RGB"))


def _warp(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`image` under a random small affine motion: shift up to 6 px, rotation up to 2 degrees,
    zoom up to 3 %, resampled bilinearly (what a camera pan or zoom does between frames)."""
    side = image.shape[0]
    angle = math.radians(rng.uniform(-2, 2))
    zoom = rng.uniform(0.97, 1.03)
    shift = rng.uniform(-6, 6, 2) * 2 / side
    theta = torch.tensor([[zoom * math.cos(angle), -zoom * math.sin(angle), shift[0]],
                          [zoom * math.sin(angle), zoom * math.cos(angle), shift[1]]], dtype=torch.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    grid = F.affine_grid(theta[None], list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return warped[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
