"""Bjøntegaard deltas of every curve against an anchor, on PSNR, MS-SSIM (dB), LPIPS and JOD.

The arithmetic is the `bjontegaard` package's (FAU-LMS) piecewise cubic (PCHIP)
interpolation, which reproduces the JVET common-test-conditions spreadsheet. BD-rate is the
mean bit-rate difference at equal quality over the range both curves cover (negative: fewer
bits than the anchor); BD-quality is the mean quality difference at equal rate. LPIPS is
negated for the computation (the interpolation wants quality rising with rate), and its
delta is reported as test minus anchor (negative: better). A delta averaged over less than
half of the two curves' joint range is flagged: it describes only the small part where the
curves meet (e.g. a low-rate codec against WebP, which cannot go below 0.1 bpp).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import bjontegaard

from lic.errors import InputError
from lic.eval.results import METRICS, Curve

#: Deltas over less of the joint range than this are flagged in tables.
MIN_OVERLAP = 0.5

#: The metrics an image BD table reports, in column order (video tables use PSNR on RGB and Y).
BD_METRICS = ("psnr-rgb", "ms-ssim-rgb", "lpips", "cvvdp")
DELTA_LABELS = {"psnr-rgb": "BD-PSNR [dB]", "psnr-y": "BD-PSNR-Y [dB]", "ms-ssim-rgb": "BD-MS-SSIM [dB]",
                 "lpips": "BD-LPIPS", "cvvdp": "BD-JOD"}
RATE_LABELS = {"psnr-rgb": "BD-rate PSNR", "psnr-y": "BD-rate PSNR-Y", "ms-ssim-rgb": "BD-rate MS-SSIM",
                "lpips": "BD-rate LPIPS", "cvvdp": "BD-rate JOD"}

DELTA_DIGITS = {"lpips": 4, "cvvdp": 3}  # JOD deltas between good codecs are hundredths

Points = tuple[list[float], list[float]]  # (bpp, quality), quality rising with bpp


def _usable(points: Points) -> bool:
    rates, quality = points
    return len(rates) >= 2 and all(b > a for a, b in zip(rates, rates[1:])) and all(
        b > a for a, b in zip(quality, quality[1:]))


def _delta(function, anchor: Points, test: Points) -> float | None:
    """None when a curve has under 2 points, is not monotonic, or the curves do not overlap."""
    if not (_usable(anchor) and _usable(test)):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns about small overlaps
        value = function(*anchor, *test, method="pchip", require_matching_points=False, min_overlap=0)
    return None if math.isnan(value) else float(value)


def bd_rate(anchor: Points, test: Points) -> float | None:
    """Mean rate difference in percent at equal quality (negative: the test needs fewer bits)."""
    return _delta(bjontegaard.bd_rate, anchor, test)


def bd_quality(anchor: Points, test: Points) -> float | None:
    """Mean quality difference at equal rate, in the quality's units (positive: test is better)."""
    return _delta(bjontegaard.bd_psnr, anchor, test)


def overlap(a: list[float], b: list[float]) -> float:
    """The share (0-1) of the joint range of two sets of values that both cover."""
    if not a or not b:
        return 0.0
    span = max(max(a), max(b)) - min(min(a), min(b))
    shared = min(max(a), max(b)) - max(min(a), min(b))
    return 1.0 if span == 0 else max(0.0, shared) / span


def _points(curve: Curve, metric: str) -> Points:
    rates, values = curve.points(metric)
    return (rates, values) if METRICS[metric].higher_is_better else (rates, [-v for v in values])


@dataclass(frozen=True)
class BdRow:
    codec: str
    rate: dict[str, float | None]  # metric -> BD-rate in percent
    delta: dict[str, float | None]  # metric -> BD-quality (LPIPS: test minus anchor)
    rate_overlap: dict[str, float]  # metric -> overlap of the quality ranges (where BD-rate averages)
    delta_overlap: dict[str, float]  # metric -> overlap of the log-rate ranges (where BD-quality averages)


def bd_table(curves: list[Curve], anchor: str, metrics: tuple[str, ...] = BD_METRICS) -> list[BdRow]:
    """One row per curve other than the anchor, with deltas on each of `metrics`."""
    by_name = {c.name: c for c in curves}
    if anchor not in by_name:
        raise InputError(f"anchor '{anchor}' is not among the curves ({', '.join(by_name) or 'none'})")
    base = by_name[anchor]
    rows = []
    for curve in curves:
        if curve.name == anchor:
            continue
        rate, delta, rate_overlap, delta_overlap = {}, {}, {}, {}
        for metric in metrics:
            a, t = _points(base, metric), _points(curve, metric)
            if metric == "cvvdp" and curve.display != base.display:
                t = ([], [])  # JOD on another display model is not comparable
            rate[metric] = bd_rate(a, t)
            d = bd_quality(a, t)
            delta[metric] = d if d is None or METRICS[metric].higher_is_better else -d
            rate_overlap[metric] = overlap(a[1], t[1])
            delta_overlap[metric] = overlap([math.log10(r) for r in a[0]], [math.log10(r) for r in t[0]])
        rows.append(BdRow(curve.name, rate, delta, rate_overlap, delta_overlap))
    return rows


def _cell(value: float | None, share: float, digits: int, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}{unit}" + ("†" if share < MIN_OVERLAP else "")


def bd_notes(anchor: str) -> list[str]:
    """What every BD table's numbers mean (printed under it)."""
    return [
        f"BD vs {anchor}: PCHIP, averaged where the two curves overlap; negative BD-rate = fewer bits "
        "for the same quality.",
        f"n/a: the curves do not overlap or are not monotonic. †: they overlap over less than "
        f"{MIN_OVERLAP:.0%} of their joint range, so the value describes only that part.",
    ]


def format_table(rows: list[BdRow], anchor: str) -> str:
    """A Markdown table and its notes; metrics no curve could be compared on are left out."""
    measured = list(rows[0].rate) if rows else []
    metrics = [m for m in measured if any(r.rate[m] is not None or r.delta[m] is not None for r in rows)]
    header = ["codec"] + [label for m in metrics for label in (RATE_LABELS[m], DELTA_LABELS[m])]
    lines = [f"| {' | '.join(header)} |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        cells = [r.codec]
        for m in metrics:
            cells.append(_cell(r.rate[m], r.rate_overlap[m], 1, "%"))
            cells.append(_cell(r.delta[m], r.delta_overlap[m], DELTA_DIGITS.get(m, 2)))
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join([*lines, "", *bd_notes(anchor)]) + "\n"


def format_clip_table(tables: dict[str, list[BdRow]], anchor: str, metric: str, delta: bool = False) -> str:
    """One codec per row, one clip per column (`tables`: clip -> its `bd_table`), and the mean
    over the clips, which is n/a unless every clip has a value (video test conditions average
    per-sequence BD-rates). BD-rate in percent, or with `delta` BD-quality."""
    clips = list(tables)
    codecs = list(dict.fromkeys(r.codec for rows in tables.values() for r in rows))
    label = (DELTA_LABELS if delta else RATE_LABELS)[metric]
    digits = DELTA_DIGITS.get(metric, 2) if delta else 1
    lines = [f"| {label} | {' | '.join(clips)} | mean |", "|---|" + "---:|" * (len(clips) + 1)]
    for codec in codecs:
        cells, values, shares = [codec], [], []
        for clip in clips:
            row = next((r for r in tables[clip] if r.codec == codec), None)
            value = None if row is None else (row.delta if delta else row.rate)[metric]
            share = 0.0 if row is None else (row.delta_overlap if delta else row.rate_overlap)[metric]
            cells.append(_cell(value, share, digits, "" if delta else "%"))
            values.append(value)
            shares.append(share)
        mean = None if None in values or not values else sum(values) / len(values)
        cells.append(_cell(mean, min(shares, default=0.0), digits, "" if delta else "%"))
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"

