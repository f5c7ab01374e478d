"""RD plots: bits per pixel against each metric the curves have, as PNG and PDF.

Measured curves are solid; published reference curves are dashed with hollow markers and
"(published)" in the legend, so they are never mistaken for numbers measured here. A codec
keeps its colour and marker in every plot. Figures are drawn without pyplot (no GUI backend,
no global state) and saved without timestamps, so re-plotting the same numbers gives the
same PDF.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from lic.files import atomic_write, check_writable
from lic.eval.results import METRICS, Curve

_MARKERS = "osD^v<>p*"  # 9 markers with 10 colours: 90 curves before a style repeats
_SAVE = {"png": {"dpi": 150, "metadata": {"Software": None}}, "pdf": {"metadata": {"CreationDate": None}}}


def plot_paths(out: Path, metrics: list[str]) -> list[Path]:
    return [out / f"rd-{m}.{ext}" for m in metrics for ext in _SAVE]


def plotted_metrics(curves: list[Curve]) -> list[str]:
    """The metrics at least one curve has values for (references alone do not make a plot)."""
    return [m for m in METRICS if any(c.points(m)[0] for c in curves)]


def _figure(metric: str, curves: list[Curve], references: list[Curve], log_bpp: bool) -> Figure:
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.add_subplot()
    colours = colormaps["tab10"].colors
    for i, curve in enumerate([*curves, *references]):
        rates, values = curve.points(metric)
        if not rates:
            continue
        published = curve.reference is not None
        style = {"color": colours[i % len(colours)], "marker": _MARKERS[i % len(_MARKERS)], "markersize": 4}
        if published:
            style.update(linestyle="--", markerfacecolor="none")
        ax.plot(rates, values, label=f"{curve.name} (published)" if published else curve.name, **style)
    metric_info = METRICS[metric]
    ax.set_xlabel("bits per pixel (bpp)")
    ax.set_ylabel(metric_info.label + ("" if metric_info.higher_is_better else " (lower is better)"))
    if log_bpp:
        ax.set_xscale("log")
    datasets = sorted({c.dataset for c in curves if c.dataset})
    if datasets:
        ax.set_title(", ".join(datasets))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


def plot_curves(
    curves: list[Curve], out: Path, references: list[Curve] = (), log_bpp: bool = False, force: bool = False
) -> list[Path]:
    """Writes rd-<metric>.png and .pdf into `out` for every metric the curves have."""
    metrics = plotted_metrics(curves)
    paths = plot_paths(out, metrics)
    for path in paths:
        check_writable(path, force)
    for metric in metrics:
        fig = _figure(metric, curves, list(references), log_bpp)
        for ext, options in _SAVE.items():
            buffer = io.BytesIO()
            fig.savefig(buffer, format=ext, **options)
            atomic_write(out / f"rd-{metric}.{ext}", buffer.getvalue(), force)
    return paths
