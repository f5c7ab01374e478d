"""Rate control: the quality and quantisation step that meet a rate or quality target.

    data, choice = lic.rate.compress_to("photo.png", Target("bpp", 0.5))
    data, choice = lic.rate.compress_to("photo.png", Target("bytes", 20_000))   # never more
    data, choice = lic.rate.compress_to("photo.png", Target("psnr", 32.0))      # smallest file

The zoo has one hyperprior model per quality; between two of them the encoder codes y in
steps of Δ = 2**(k/64) (`lic.codecs.hyperprior.step_size`, the container's version 2), which
moves the rate in about 1 % increments. For a target the search brackets it with the two
neighbouring qualities at Δ = 1, finds in each the step that meets it (estimated rates from
the integer tables' bit costs, then the real coded size), and keeps the one that decodes
best (rate targets) or is smallest (a PSNR target). Each quality's g_a and h_s run once per
image; a PSNR costs one g_s synthesis, so PSNR targets (a bisection on Δ) are the slowest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from PIL import Image

from lic import models
from lic.api import check_pixels, container
from lic.codecs.base import as_pixels, pad_to_multiple, to_device
from lic.codecs.hyperprior import HyperpriorCodec
from lic.codecs.latent.gaussian import MAX_STEP
from lic.codecs.refine import element_bits, table_bits
from lic.errors import InputError
from lic.imageio import SourceImage, load_image

BPP_TOLERANCE = 0.015  # a bpp target is met within ±1.5 % (when it can be reached)
_QUALITIES = range(1, 9)


@dataclass(frozen=True)
class Target:
    kind: Literal["bpp", "bytes", "psnr"]
    value: float

    def __str__(self) -> str:
        return {"bpp": f"{self.value:g} bpp", "bytes": f"{self.value:,.0f} bytes", "psnr": f"{self.value:g} dB"}[self.kind]


@dataclass(frozen=True)
class Choice:
    """What the search settled on: the model quality, the step code and the file's figures."""

    quality: int
    step: int
    nbytes: int
    bpp: float
    psnr: float


class RateImage:
    """One image's analyses at every quality, computed once and shared by the search."""

    def __init__(self, source: SourceImage, model: str, device: str) -> None:
        self.source = source
        self.model, self.device = model, device
        self.pixels = source.width * source.height
        self.rgb = torch.from_numpy(source.rgb).permute(2, 0, 1).double()
        self.qualities = [q for q in _QUALITIES if _has(model, q)]
        if not self.qualities:
            raise InputError(f"rate targets need hyperprior models; {model} has none")
        self._base: dict[int, tuple] = {}
        self._data: dict[tuple[int, int], bytes] = {}
        self._psnr: dict[tuple[int, int], float] = {}

    def base(self, quality: int) -> tuple[HyperpriorCodec, bytes, torch.Tensor, dict, float]:
        """(codec, model hash, y latents, the step-0 analysis, z's bits) at one quality."""
        if quality not in self._base:
            self._base[quality] = self._analyse(quality)
        return self._base[quality]

    def _analyse(self, quality: int) -> tuple[HyperpriorCodec, bytes, torch.Tensor, dict, float]:
        model_file = models.find(self.model, quality)
        codec = models.load_codec(model_file.path, self.device, quality)
        if not isinstance(codec, HyperpriorCodec):
            raise InputError(f"rate targets need a hyperprior model, not {codec.family}")
        x = pad_to_multiple(as_pixels(self.source.rgb), codec.stride)[0]
        y = codec.latents(x)
        a = codec.latent.analyse(y)
        channels = torch.arange(a["z"].shape[1]).view(1, -1, 1, 1).expand_as(a["z"])
        z_bits = float(element_bits(a["z"], channels, _bits(codec, "z")).sum())
        return codec, model_file.hash, y, a, z_bits

    def analysis(self, quality: int, step: int) -> dict:
        codec, _, y, a, _ = self.base(quality)
        return a if step == 0 else codec.latent.quantise(y, a, step)

    def estimated_bpp(self, quality: int, step: int) -> float:
        codec, _, _, _, z_bits = self.base(quality)
        a = self.analysis(quality, step)
        y_bits = float(element_bits(a["y"], a["index"], _bits(codec, "y")).sum())
        return (y_bits + z_bits + 8 * 40) / self.pixels  # 40 bytes: header, CRC, coder flushes

    def data(self, quality: int, step: int) -> bytes:
        if (quality, step) not in self._data:
            codec, model_hash, _, _, _ = self.base(quality)
            encoded = codec.latent.streams(self.analysis(quality, step))
            self._data[quality, step] = container(codec, self.source, quality, model_hash, encoded)
        return self._data[quality, step]

    def bpp(self, quality: int, step: int) -> float:
        return 8 * len(self.data(quality, step)) / self.pixels

    def psnr(self, quality: int, step: int) -> float:
        """RGB PSNR of the pixels a decoder gets from `data(quality, step)` (the same g_s)."""
        if (quality, step) not in self._psnr:
            self._psnr[quality, step] = self._measure_psnr(quality, step)
        return self._psnr[quality, step]

    def _measure_psnr(self, quality: int, step: int) -> float:
        codec = self.base(quality)[0]
        decoded = codec.synthesise(codec.latent.latents_hat(self.analysis(quality, step)))
        h, w = self.source.height, self.source.width
        mse = float((decoded[0, :, :h, :w].double() - self.rgb).pow(2).mean())
        return 10 * math.log10(255**2 / mse) if mse else math.inf

    def choice(self, quality: int, step: int) -> Choice:
        return Choice(quality, step, len(self.data(quality, step)), self.bpp(quality, step), self.psnr(quality, step))


def _has(model: str, quality: int) -> bool:
    try:
        return models.find(model, quality).family == "hyperprior"
    except Exception:  # noqa: BLE001 - any model that cannot be found is one the search skips
        return False


@lru_cache(maxsize=32)
def _bits(codec: HyperpriorCodec, which: str) -> tuple:
    return table_bits(codec.latent.y.tables if which == "y" else codec.latent.z.tables, torch.device("cpu"))


def _last_true(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """The largest n in lo..hi with ok(n), for ok true up to some n and false after."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def _bracket(qualities: list[int], above: Callable[[int], bool]) -> tuple[int | None, int | None]:
    """The highest quality not `above` the target and the lowest one that is (either None)."""
    last_below = _last_true(0, len(qualities) - 1, lambda i: not above(qualities[i]))
    lo = qualities[last_below] if last_below is not None else None
    hi = qualities[last_below + 1] if last_below is not None and last_below + 1 < len(qualities) else (
        qualities[0] if last_below is None else None)
    return lo, hi


def _rate_search(im: RateImage, bpp: float, fits: Callable[[int, int], bool]) -> list[tuple[int, int]]:
    """Per bracketing quality, the smallest step whose estimated rate is at most `bpp`, then
    moved by the real coded size until `fits` says it is the first that fits."""
    lo, hi = _bracket(im.qualities, lambda q: im.estimated_bpp(q, 0) > bpp)
    found = []
    for q, (first, last) in ((lo, (-MAX_STEP, 0)), (hi, (0, MAX_STEP))):
        if q is None:
            continue
        # estimated rate falls as the step grows: the first step at or under the target
        over = _last_true(first, last, lambda s: im.estimated_bpp(q, s) > bpp)
        step = first if over is None else min(over + 1, last)
        while step < MAX_STEP and not fits(q, step):
            step += 1
        while step > -MAX_STEP and fits(q, step - 1):
            step -= 1
        found.append((q, step))
    return found


class OutOfReach(InputError):
    """A target no quality and step reaches for this image; `nearest` is the closest file."""

    def __init__(self, target: Target, nearest: Choice) -> None:
        value = {"bpp": f"{nearest.bpp:.4f} bpp", "bytes": f"{nearest.nbytes:,} bytes", "psnr": f"{nearest.psnr:.2f} dB"}
        super().__init__(f"the target {target} is out of reach for this image; the nearest reachable is "
                         f"{value[target.kind]} (quality {nearest.quality}, step {nearest.step})")
        self.nearest = nearest


def search(im: RateImage, target: Target) -> Choice:
    """The (quality, step) for `target`; an InputError naming the nearest reachable value."""
    q_min, q_max = im.qualities[0], im.qualities[-1]
    if target.kind == "psnr":
        return _psnr_search(im, target)
    if target.kind == "bytes":
        if len(im.data(q_min, MAX_STEP)) > target.value:
            raise OutOfReach(target, im.choice(q_min, MAX_STEP))
        found = _rate_search(im, target.value * 8 / im.pixels, lambda q, s: len(im.data(q, s)) <= target.value)
        return max((im.choice(q, s) for q, s in found), key=lambda c: (c.psnr, -c.nbytes))
    bpp, tolerance = target.value, BPP_TOLERANCE * target.value
    if im.bpp(q_min, MAX_STEP) > bpp + tolerance:
        raise OutOfReach(target, im.choice(q_min, MAX_STEP))
    if im.bpp(q_max, -MAX_STEP) < bpp - tolerance:
        raise OutOfReach(target, im.choice(q_max, -MAX_STEP))
    nearest = []
    for q, s in _rate_search(im, bpp, lambda q, s: im.bpp(q, s) <= bpp):
        # the first step at or under the target, or the one before it, just over
        nearest.append(min(((q, t) for t in (s - 1, s) if abs(t) <= MAX_STEP), key=lambda c: abs(im.bpp(*c) - bpp)))
    within = [im.choice(q, s) for q, s in nearest if abs(im.bpp(q, s) - bpp) <= tolerance]
    if not within:  # steps too coarse for this image (tiny images): the closest file
        return im.choice(*min(nearest, key=lambda c: abs(im.bpp(*c) - bpp)))
    return max(within, key=lambda c: (c.psnr, -c.nbytes))


def _psnr_search(im: RateImage, target: Target) -> Choice:
    """The smallest file among the bracketing qualities' largest steps that still reach the PSNR."""
    q_min, q_max = im.qualities[0], im.qualities[-1]
    reaches = lambda q, s: im.psnr(q, s) >= target.value  # noqa: E731
    if not reaches(q_max, -MAX_STEP):
        raise OutOfReach(target, im.choice(q_max, -MAX_STEP))
    lo, hi = _bracket(im.qualities, lambda q: reaches(q, 0))
    candidates = []
    for q, (first, last) in ((hi, (0, MAX_STEP)), (lo, (-MAX_STEP, 0))):
        if q is None:
            continue
        step = _last_true(first, last, lambda s: reaches(q, s))  # PSNR falls as the step grows
        if step is not None:
            candidates.append(im.choice(q, step))
    if not candidates:  # cannot happen when q_max at the finest step reaches it, but be exact
        candidates = [im.choice(q_max, -MAX_STEP)]
    return min(candidates, key=lambda c: (c.nbytes, -c.psnr))


def compress_to(image: "str | Path | Image.Image | np.ndarray | SourceImage", target: Target,
                model: str = "hyperprior", device: str = "cpu", max_pixels: int | None = None,
                nearest: bool = False) -> tuple[bytes, Choice]:
    """The .lic bytes that meet `target` for an image, and what was chosen. A target out of
    reach raises `OutOfReach`, or with `nearest` gives the nearest reachable file."""
    if target.kind not in ("bpp", "bytes", "psnr") or not target.value > 0 or not math.isfinite(target.value):
        raise InputError(f"a target must be a positive bpp, byte count or PSNR, not {target.value}")
    source = load_image(image)
    check_pixels(source.width, source.height, max_pixels)
    im = RateImage(source, model, str(to_device(device)))
    try:
        choice = search(im, target)
    except OutOfReach as e:
        if not nearest:
            raise
        choice = e.nearest
    return im.data(choice.quality, choice.step), choice
