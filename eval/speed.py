"""Coding speed, measured side by side: what `lic bench` prints.

Timings on a shared or throttled machine drift from minute to minute, so every comparison
here runs its contenders alternately, image by image, for several rounds, and reports the
median round: a ratio of two such medians holds even when the absolute times do not.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from lic import api, bitstream, models
from lic.codecs.base import pad_to_multiple
from lic.imageio import SourceImage, load_image

#: The classic codecs `lic bench` times next to lic, each at a rate like lic's.
BASELINE_NAMES = ("webp", "avif", "jxl")


def median_rounds(tasks: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each task over `rounds`, the tasks run in turn within each round."""
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def load_images(paths: Iterable[Path]) -> list[SourceImage]:
    return [load_image(p) for p in paths]


def _lic_tasks(images: list[SourceImage], quality: int, device: str) -> tuple[dict[str, Callable[[], object]], float]:
    """Encode, exact decode and fast decode of all `images` with the shipped hyperprior at
    `quality` (model loaded once, outside the timing), and the mean bits per pixel."""
    model_file = models.find("hyperprior", quality)
    codec = models.load_codec(model_file.path, device, quality)
    files = [bitstream.unpack(api.encode_with(codec, s, quality, model_file.hash)) for s in images]
    bpp = float(np.mean([8 * (len(bitstream.pack(h, st))) / (h.width * h.height) for h, st in files]))
    return {
        "encode": lambda: [api.encode_with(codec, s, quality, model_file.hash) for s in images],
        "decode": lambda: [api.decode_with(codec, h, st) for h, st in files],
        "decode --fast": lambda: [api.decode_with(codec, h, st, fast=True) for h, st in files],
    }, bpp


def _baseline_tasks(name: str, images: list[SourceImage], bpp: float, threads: int) -> tuple[dict, float, int]:
    """Encode and decode tasks of a classic codec at the quality of its sweep whose rate on
    `images` is nearest `bpp`; returns them, that rate and that quality."""
    from lic.eval.baselines import BASELINES

    codec = BASELINES[name]
    options = {k: threads if k in ("max_threads", "num_threads") else v for k, v in codec.options.items()}
    codec = dataclasses.replace(codec, options=options)

    def rate(q: int) -> float:
        return float(np.mean([8 * len(codec.encode(s.rgb, q)) / (s.width * s.height) for s in images]))

    quality = min(codec.qualities, key=lambda q: abs(np.log(rate(q) / bpp)))
    coded = [codec.encode(s.rgb, quality) for s in images]
    return ({"encode": lambda: [codec.encode(s.rgb, quality) for s in images],
             "decode": lambda: [codec.decode(d) for d in coded]}, rate(quality), quality)


@dataclasses.dataclass
class SpeedRow:
    codec: str
    threads: int
    bpp: float
    encode_mps: float
    decode_mps: float
    fast_decode_mps: float | None = None


def bench(paths: list[Path], qualities: list[int], threads: list[int], rounds: int,
          baseline_quality: int | None, device: str = "cpu") -> list[SpeedRow]:
    """Megapixels per second of each shipped hyperprior quality (exact and fast decode) and of
    the classic codecs at the rate of `baseline_quality`, per thread count."""
    from lic.eval.baselines import BASELINES

    images = load_images(paths)
    megapixels = sum(s.width * s.height for s in images) / 1e6
    rows = []
    before = torch.get_num_threads()
    try:
        for n in threads:
            torch.set_num_threads(n)
            rates = {}
            for q in qualities:
                tasks, bpp = _lic_tasks(images, q, device)
                rates[q] = bpp
                t = median_rounds(tasks, rounds)
                rows.append(SpeedRow(f"lic hyperprior q{q}", n, bpp, megapixels / t["encode"],
                                     megapixels / t["decode"], megapixels / t["decode --fast"]))
            if baseline_quality is None:
                continue
            target = rates.get(baseline_quality) or _lic_tasks(images, baseline_quality, device)[1]
            for name in BASELINE_NAMES:
                if BASELINES[name].unavailable():
                    continue
                tasks, bpp, q = _baseline_tasks(name, images, target, n)
                t = median_rounds(tasks, rounds)
                rows.append(SpeedRow(f"{name} q{q}", n, bpp, megapixels / t["encode"], megapixels / t["decode"]))
    finally:
        torch.set_num_threads(before)
    return rows


def against_compressai(paths: list[Path], qualities: list[int], rounds: int) -> list[dict]:
    """lic's times over CompressAI's on the same images, side by side: the shipped hyperprior
    at each quality against `compressai.models.MeanScaleHyperprior(128, 192)` (the same layer
    shapes; random weights, `update()`d; its own compress/decompress)."""
    from compressai.models import MeanScaleHyperprior

    torch.manual_seed(0)
    reference = MeanScaleHyperprior(128, 192).eval()
    reference.update(force=True)
    images = load_images(paths)
    inputs = [pad_to_multiple(torch.from_numpy(s.rgb).permute(2, 0, 1)[None].float() / 255, 64)[0] for s in images]
    with torch.no_grad():
        coded = [reference.compress(x) for x in inputs]
    reference_tasks = {
        "compressai compress": lambda: [reference.compress(x) for x in inputs],
        "compressai decompress": lambda: [reference.decompress(c["strings"], c["shape"]) for c in coded],
    }
    rows = []
    with torch.no_grad():
        for q in qualities:
            tasks, _ = _lic_tasks(images, q, "cpu")
            t = median_rounds({**reference_tasks, **tasks}, rounds)
            rows.append({"quality": q, "images": len(images), "rounds": rounds, "threads": torch.get_num_threads(),
                         "encode": t["encode"] / t["compressai compress"],
                         "decode": t["decode"] / t["compressai decompress"],
                         "decode --fast": t["decode --fast"] / t["compressai decompress"],
                         "seconds": t})
    return rows


def fast_deviation(paths: list[Path], qualities: list[int]) -> list[dict]:
    """Per quality, how `decode --fast` differs from the exact decode on `paths`: the fraction
    of pixel values (of all images together) that differ, the largest difference, and the mean
    PSNR against the source of each decode."""
    from lic.eval.metrics import psnr

    images = load_images(paths)
    rows = []
    for q in qualities:
        model_file = models.find("hyperprior", q)
        codec = models.load_codec(model_file.path, "cpu", q)
        differing = values = largest = 0
        psnr_exact, psnr_fast = [], []
        for source in images:
            header, streams = bitstream.unpack(api.encode_with(codec, source, q, model_file.hash))
            exact = np.asarray(api.decode_with(codec, header, streams).convert("RGB")).astype(np.int16)
            fast = np.asarray(api.decode_with(codec, header, streams, fast=True).convert("RGB")).astype(np.int16)
            differing += int(np.count_nonzero(exact != fast))
            values += exact.size
            largest = max(largest, int(np.abs(exact - fast).max()))
            psnr_exact.append(psnr(source.rgb, exact.astype(np.uint8)))
            psnr_fast.append(psnr(source.rgb, fast.astype(np.uint8)))
        rows.append({"quality": q, "images": len(images), "differing_fraction": differing / values,
                     "max_difference": largest, "psnr_exact": float(np.mean(psnr_exact)),
                     "psnr_fast": float(np.mean(psnr_fast))})
    return rows
