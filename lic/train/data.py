"""Training data held in memory, so the accelerator never waits on image decoding.

Sources are folders (searched recursively) or .tar files of images (the GPU machine gets the
training set as tars). All images are decoded once into uint8 tensors on the training device;
batches are random crops with random horizontal flips, taken on that device.
"""

from __future__ import annotations

import io
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from lic.errors import InputError

if TYPE_CHECKING:
    from lic.train.common import RunConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).contiguous()


def _read_tar(path: Path) -> list[tuple[str, torch.Tensor]]:
    out = []
    with tarfile.open(path) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES:
                data = tar.extractfile(member).read()
                out.append((f"{path.name}:{member.name}", _to_tensor(Image.open(io.BytesIO(data)))))
    return out


def load_images(sources: list["str | Path"], min_side: int) -> tuple[list[torch.Tensor], int]:
    """Decodes every image in `sources`; returns those with both sides >= min_side and
    how many were skipped for being smaller."""
    images, skipped = [], 0
    for source in map(Path, sources):
        if source.is_file() and source.suffix == ".tar":
            items = [t for _, t in _read_tar(source)]
        elif source.is_dir():
            items = [_to_tensor(Image.open(p)) for p in image_files(source)]
        else:
            raise InputError(f"{source}: not a folder or .tar of images")
        for t in items:
            if min(t.shape[1:]) >= min_side:
                images.append(t)
            else:
                skipped += 1
    if not images:
        raise InputError(f"no training images of at least {min_side}x{min_side} in {', '.join(map(str, sources))}")
    return images, skipped


def training_images(cfg: "RunConfig", device: torch.device) -> list[torch.Tensor]:
    """Every training image decoded into memory once (the GPU never waits on PNG decoding)."""
    from lic.train.common import hardware

    t0 = time.monotonic()
    images, skipped = load_images(cfg.data, cfg.crop)
    print(f"{len(images)} training images in memory ({skipped} smaller than {cfg.crop} skipped), "
          f"loaded in {time.monotonic() - t0:.0f} s; training on {hardware(device)}", file=sys.stderr)
    return images


def training_data(cfg: "RunConfig", device: torch.device, step: int) -> tuple[list[torch.Tensor], "CropSampler"]:
    """The training images and a sampler whose random stream continues from `step` on resume."""
    images = training_images(cfg, device)
    return images, CropSampler(images, cfg.crop, cfg.batch, device, cfg.seed + step)


class CropSampler:
    """Random crops (and flips) from in-memory images, returned as float [0, 1] batches.

    `part = (rank, parts)`: every rank draws the whole batch's random numbers from the same
    stream and cuts out only its own share, so N data-parallel processes together see exactly
    the crops one process would (and a resumed run sees the same crops whatever N is).
    """

    def __init__(self, images: list[torch.Tensor], crop: int, batch: int, device: torch.device, seed: int,
                 part: tuple[int, int] = (0, 1)) -> None:
        self.images = [im.to(device) for im in images]
        self.crop, self.batch, self.device = crop, batch, device
        rank, parts = part
        share = batch // parts
        self.mine = range(rank * share, (rank + 1) * share)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self) -> torch.Tensor:
        g, c = self.generator, self.crop
        picks = torch.randint(len(self.images), (self.batch,), generator=g).tolist()
        crops = []
        for k, i in enumerate(picks):
            im = self.images[i]
            top = int(torch.randint(im.shape[1] - c + 1, (1,), generator=g))
            left = int(torch.randint(im.shape[2] - c + 1, (1,), generator=g))
            flip = bool(torch.rand(1, generator=g) < 0.5)
            if k in self.mine:
                patch = im[:, top : top + c, left : left + c]
                crops.append(patch.flip(-1) if flip else patch)
        return torch.stack(crops).float().div_(255)
