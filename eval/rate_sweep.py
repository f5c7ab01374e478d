"""Rate-control sweep: every image at many bpp targets and byte budgets, and its 8-model ladder.

    python -m lic.eval.rate_sweep IMAGES... --csv rows.csv [-j 14] [--device cuda]
    python -m lic.eval.rate_sweep --summary rows.csv

Rows: the ladder (each quality at step 0), then `--targets` bpp targets (`lic.rate`'s
`--target-bpp`) and the same rates as byte budgets (`--max-bytes`), one row per real file,
with its real size and the RGB PSNR it decodes to. Rows are appended as they are made and
an image already in the file is skipped, so a sweep cut short resumes. The summary says how
many targets landed within the tolerance (or were out of reach), whether any budget was
exceeded, and the BD-rate of the in-between points against the ladder, per image (mean) and
for the mean curves.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from lic.errors import InputError
from lic.eval.bdrate import bd_rate
from lic.imageio import load_image
from lic.rate import BPP_TOLERANCE, RateImage, Target, search

FIELDS = ("image", "kind", "target", "quality", "step", "bytes", "bpp", "psnr_rgb", "status", "seconds")


def targets(count: int, low: float = 0.15, high: float = 1.5) -> list[float]:
    """`count` bpp targets spread evenly in log rate from `low` to `high`."""
    return [round(float(t), 4) for t in np.geomspace(low, high, count)]


def sweep_image(image: Path, rates: list[float], device: str) -> list[tuple]:
    """Every row of one image (one process)."""
    source = load_image(image)
    im = RateImage(source, "hyperprior", device)
    rows = []
    for q in im.qualities:
        c = im.choice(q, 0)
        rows.append((image.name, "ladder", q, q, 0, c.nbytes, f"{c.bpp:.6f}", f"{c.psnr:.4f}", "ok", 0))
    for kind, value in [("bpp", r) for r in rates] + [("bytes", round(r * im.pixels / 8)) for r in rates]:
        start = time.perf_counter()
        target = Target(kind, value)
        try:
            c = search(im, target)
            if kind == "bpp":
                status = "ok" if abs(c.bpp - value) <= BPP_TOLERANCE * value else "missed"
            else:
                status = "ok" if c.nbytes <= value else "exceeded"
        except InputError as e:
            rows.append((image.name, kind, value, "", "", "", "", "", f"out of reach: {e}".replace(",", ""), 0))
            continue
        rows.append((image.name, kind, value, c.quality, c.step, c.nbytes, f"{c.bpp:.6f}", f"{c.psnr:.4f}",
                     status, f"{time.perf_counter() - start:.2f}"))
    return rows


def _write(out: Path, rows: list[tuple]) -> None:
    with out.open("a") as f:
        f.write("".join(",".join(map(str, r)) + "\n" for r in rows))


def sweep(images: list[Path], rates: list[float], device: str, out: Path, jobs: int) -> None:
    if not out.exists():
        out.write_text(",".join(FIELDS) + "\n")
    with out.open(newline="") as f:
        done = {r["image"] for r in csv.DictReader(f)}
    todo = [i for i in images if i.name not in done]
    if jobs <= 1:
        for image in todo:
            _write(out, sweep_image(image, rates, device))
        return
    # spawned workers: each initialises its own CUDA context (a forked one cannot)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:  # rows as images finish
        for future in as_completed([pool.submit(sweep_image, i, rates, device) for i in todo]):
            _write(out, future.result())


def summary(path: Path) -> str:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return f"{path}: no rows yet"
    lines = []
    for kind in ("bpp", "bytes"):
        mine = [r for r in rows if r["kind"] == kind]
        counts = {s: sum(r["status"].startswith(s) for r in mine) for s in ("ok", "missed", "exceeded", "out of reach")}
        lines.append(f"{kind} targets: {len(mine)} rows, " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        errors = [abs(float(r["bpp"]) / float(r["target"]) - 1) for r in mine if kind == "bpp" and r["bpp"]]
        if errors:
            lines.append(f"  |bpp / target - 1|: mean {np.mean(errors) * 100:.2f} %, max {np.max(errors) * 100:.2f} %")
    images = sorted({r["image"] for r in rows})
    deltas = []
    for image in images:
        ladder = sorted((float(r["bpp"]), float(r["psnr_rgb"])) for r in rows if r["image"] == image and r["kind"] == "ladder")
        points = sorted((float(r["bpp"]), float(r["psnr_rgb"])) for r in rows
                        if r["image"] == image and r["kind"] == "bpp" and r["bpp"])
        if len(points) >= 4 and len(ladder) >= 4:
            delta = bd_rate(tuple(map(list, zip(*ladder))), tuple(map(list, zip(*points))))
            if delta is not None:
                deltas.append(delta)
    if deltas:
        lines.append(f"BD-rate of the bpp-target points against the 8-model ladder (RGB PSNR, real sizes): "
                     f"mean over {len(deltas)} images {np.mean(deltas):+.2f} % (min {np.min(deltas):+.2f}, "
                     f"max {np.max(deltas):+.2f})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("--targets", type=int, default=20, help="bpp targets from 0.15 to 1.5 (log-spaced)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--csv", type=Path, default=Path("rate.csv"))
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    files = sorted(p for a in args.images for p in ([a] if a.is_file() else sorted(a.glob("*.png"))))
    sweep(files, targets(args.targets), args.device, args.csv, args.jobs)


if __name__ == "__main__":
    main()
