"""Effort sweep: real .lic files of each image at each quality and effort, one CSV row each.

    python -m lic.eval.effort IMAGES... --quality 4 --efforts 0,3 --device cuda --csv rows.csv [--shard 0/2]
    python -m lic.eval.effort --summary rows.csv

Rows are appended as they are measured and already measured (image, quality, effort) rows are
skipped, so a sweep cut short by a deadline keeps what it did and resumes where it stopped;
several processes (one per quality, or per `--shard` of the images) may append to the same file. Each row's PSNR is measured
on the pixels `lic.decompress` gives for the written bytes, not on the encoder's own estimate.
`--summary` prints the BD-rate (RGB PSNR, real file sizes) of each effort against effort 0
over the images both cover at every quality, and the encode time per megapixel: wall time,
and the process's CPU time (what one core costs when the machine is shared).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

import lic
from lic.eval.bdrate import bd_rate
from lic.eval.metrics import psnr
from lic.imageio import load_image

FIELDS = ("image", "quality", "effort", "bytes", "bpp", "psnr_rgb", "encode_s", "device", "encode_cpu_s")


def _done(path: Path) -> set[tuple[str, int, int]]:
    if not path.exists():
        return set()
    with path.open(newline="") as f:
        return {(r["image"], int(r["quality"]), int(r["effort"])) for r in csv.DictReader(f)}


def sweep(images: list[Path], qualities: list[int], efforts: list[int], device: str, out: Path) -> None:
    try:  # exclusive create: of several processes starting together, one writes the header
        with out.open("x") as f:
            f.write(",".join(FIELDS) + "\n")
    except FileExistsError:
        pass
    done, warm = _done(out), set()
    for image in images:
        source = load_image(image)
        pixels = source.width * source.height
        for quality in qualities:
            for effort in efforts:
                if (image.name, quality, effort) in done:
                    continue
                if quality not in warm:  # the model is loaded (and the GPU warmed up) before timing
                    lic.compress(np.ascontiguousarray(source.rgb[:128, :128]), quality=quality, device=device,
                                 effort=max(efforts))
                    warm.add(quality)
                start, cpu = time.perf_counter(), time.process_time()
                data = lic.compress(source, quality=quality, device=device, effort=effort)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                decoded = np.asarray(lic.decompress(data, device=device).convert("RGB"))
                row = (image.name, quality, effort, len(data), f"{8 * len(data) / pixels:.6f}",
                       f"{psnr(source.rgb, decoded):.4f}", f"{seconds:.3f}", device, f"{cpu:.3f}")
                with out.open("a") as f:  # one short write per row: safe to share between processes
                    f.write(",".join(map(str, row)) + "\n")


def summary(path: Path) -> str:
    """Per effort: the BD-rate of the mean curve against the lowest effort's, over the images
    both cover at every quality, and the mean encode time per image and per megapixel."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return f"{path}: no rows yet"
    efforts = sorted({int(r["effort"]) for r in rows})
    qualities = sorted({int(r["quality"]) for r in rows})
    got: dict[tuple[str, int, int], dict] = {(r["image"], int(r["quality"]), int(r["effort"])): r for r in rows}
    images = sorted({r["image"] for r in rows})

    def covered(*levels: int) -> list[str]:
        return [i for i in images if all((i, q, e) in got for q in qualities for e in levels)]

    def curve(effort: int, among: list[str]) -> tuple[list[float], list[float]]:
        mean = lambda key, q: float(np.mean([float(got[(i, q, effort)][key]) for i in among]))  # noqa: E731
        return [mean("bpp", q) for q in qualities], [mean("psnr_rgb", q) for q in qualities]

    anchor = efforts[0]
    lines = [f"qualities {qualities}; BD-rate (RGB PSNR, file sizes) of the mean curve vs effort {anchor}"]
    for effort in efforts:
        among = covered(anchor, effort)
        if not among:
            lines.append(f"effort {effort}: no image has every quality at efforts {anchor} and {effort} yet")
            continue
        bpp, dbs = curve(effort, among)
        bd = bd_rate(curve(anchor, among), (bpp, dbs)) if effort != anchor else 0.0
        per_image = [d for d in (bd_rate(curve(anchor, [i]), curve(effort, [i])) for i in among) if d is not None]
        spread = (f" (per image: mean {np.mean(per_image):+.2f} %, from {min(per_image):+.2f} to {max(per_image):+.2f} %)"
                  if per_image and effort != anchor else "")
        keys = [(i, q, effort) for i in among for q in qualities]
        secs = [float(got[k]["encode_s"]) for k in keys]
        mpix = [8 * int(got[k]["bytes"]) / float(got[k]["bpp"]) / 1e6 for k in keys]
        points = ", ".join(f"q{q} {b:.4f} bpp {d:.2f} dB" for q, b, d in zip(qualities, bpp, dbs))
        cpu = [float(got[k]["encode_cpu_s"]) for k in keys if got[k].get("encode_cpu_s")]
        cpu_text = f" (process CPU time {sum(cpu) / sum(mpix):.2f} s per megapixel)" if len(cpu) == len(keys) else ""
        lines.append(f"effort {effort} ({len(among)} images): BD-rate {'n/a' if bd is None else f'{bd:+.2f} %'}{spread}; "
                     f"encode {np.mean(secs):.2f} s per image, {sum(secs) / sum(mpix):.2f} s per megapixel{cpu_text}; "
                     f"{points}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("--quality", default="1,3,5,7")
    parser.add_argument("--efforts", default="0,3")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--csv", type=Path, default=Path("effort.csv"))
    parser.add_argument("--summary", type=Path)
    parser.add_argument("--shard", default="0/1", help="i/n: every n-th image from the i-th (one process each)")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    files = sorted(p for a in args.images for p in ([a] if a.is_file() else sorted(a.glob("*.png"))))
    shard, shards = (int(n) for n in args.shard.split("/"))
    files = files[shard::shards]
    sweep(files, [int(q) for q in args.quality.split(",")], [int(e) for e in args.efforts.split(",")],
          args.device, args.csv)


if __name__ == "__main__":
    main()
