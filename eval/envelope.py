"""A codec against the best of several baselines at the same bpp.

BD-rate needs overlapping curves. At extreme rates the baselines are a family (AVIF and
WebP after a x2 or x4 downscale, each a curve over its quality knob) and the fair question
is: at this file size, what is the best any of them does? For each point of the tested
curve, every baseline curve that spans its bpp is interpolated linearly in bpp, and the
envelope is the best of those values (highest, or lowest for GMSD and LPIPS). Points that
no baseline reaches get no envelope value rather than an extrapolated one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lic.eval.results import METRICS, Curve


def _raw_points(curve: Curve, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(bpp, value) by increasing bpp, in the metric's own units (MS-SSIM not in dB)."""
    pairs = sorted((b, v) for b, v in zip(curve.results["bpp"], curve.results.get(metric) or [])
                   if b is not None and v is not None)
    return np.array([b for b, _ in pairs], float), np.array([v for _, v in pairs], float)


def envelope_at(baselines: list[Curve], metric: str, bpp: float, log_bpp: bool = False) -> tuple[float, str] | None:
    """The best baseline value at `bpp` and the curve it comes from; None if none spans it.

    `log_bpp` interpolates linearly in log(bpp) instead, as video results are usually read
    off a curve (PSNR is close to linear in log rate)."""
    best = None
    sign = 1 if METRICS[metric].higher_is_better else -1
    for curve in baselines:
        rates, values = _raw_points(curve, metric)
        if len(rates) < 2 or not rates[0] <= bpp <= rates[-1]:
            continue
        value = float(np.interp(np.log(bpp), np.log(rates), values) if log_bpp else np.interp(bpp, rates, values))
        if best is None or sign * value > sign * best[0]:
            best = (value, curve.name)
    return best


@dataclass(frozen=True)
class EnvelopeRow:
    quality: int
    bpp: float
    values: dict[str, float | None]  # the tested codec's
    envelope: dict[str, tuple[float, str] | None]  # the best baseline's, and which


def compare(test: Curve, baselines: list[Curve], metrics: list[str]) -> list[EnvelopeRow]:
    rows = []
    for i, (quality, bpp) in enumerate(zip(test.results["quality"], test.results["bpp"])):
        values = {m: (test.results.get(m) or [None] * (i + 1))[i] for m in metrics}
        envelope = {m: envelope_at(baselines, m, bpp) for m in metrics}
        rows.append(EnvelopeRow(int(quality), float(bpp), values, envelope))
    return rows


def format_table(test: Curve, rows: list[EnvelopeRow], metrics: list[str]) -> str:
    """Markdown: per point, the codec's value, the envelope's and the difference."""
    head = ["quality", "bpp"] + [f"{m} {part}" for m in metrics for part in (test.name, "best baseline", "Δ")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for row in rows:
        cells = [str(row.quality), f"{row.bpp:.4f}"]
        for m in metrics:
            value, best = row.values[m], row.envelope[m]
            cells.append("n/a" if value is None else f"{value:.3f}")
            cells.append("n/a" if best is None else f"{best[0]:.3f} ({best[1]})")
            cells.append("n/a" if value is None or best is None else f"{value - best[0]:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
