"""Side-by-side crops for the README: original / lic-vq / downscaled AVIF at about equal bpp.

At 0.02-0.05 bpp a rate-distortion curve hides what the pictures look like: the VQ codec
invents texture, downscaled AVIF blurs. This figure shows both on the same crop, each at the
rate of the real file it comes from (whole-file bytes per full-resolution pixel):

    python -m lic.eval.crops ../shared/data/kodak/kodim23.png ../shared/data/kodak/kodim14.png \\
        --model vq --level 4 --out eval/results/kodak/crops/vq-crops.png

For each image the AVIF file is the downscaled AVIF (1/2, 1/4 or 1/8 size, any quality) whose
size is closest to the VQ file's without exceeding it by more than 10%.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lic.errors import LicError
from lic.eval.baselines import BASELINES, Downscaled

#: Downscaled AVIF candidates: the harness's two, and 1/8 size for the lowest rates.
_AVIF_FACTORS = (2, 4, 8)
_AVIF_QUALITIES = tuple(range(0, 101, 5))


@dataclass
class Coded:
    label: str
    rgb: np.ndarray
    bytes: int

    def bpp(self, pixels: int) -> float:
        return 8 * self.bytes / pixels


def _avif(factor: int) -> Downscaled:
    return Downscaled(f"avif-down{factor}", BASELINES["avif"], factor, _AVIF_QUALITIES)


def avif_near(rgb: np.ndarray, target_bytes: int, slack: float = 1.1) -> Coded:
    """The downscaled AVIF file closest in size to `target_bytes` (at most `slack` times it)."""
    best = None
    for factor in _AVIF_FACTORS:
        codec = _avif(factor)
        for quality in _AVIF_QUALITIES:
            data = codec.encode(rgb, quality)
            if len(data) > slack * target_bytes:
                break  # larger qualities only grow
            if best is None or abs(len(data) - target_bytes) < abs(best[0] - target_bytes):
                best = (len(data), factor, quality, data)
    if best is None:
        raise ValueError(f"no downscaled AVIF file is as small as {target_bytes} bytes")
    size, factor, quality, data = best
    return Coded(f"AVIF 1/{factor} size q{quality}", _avif(factor).decode(data), size)


def code_image(path: Path, model: str, level: int) -> tuple[np.ndarray, Coded, Coded]:
    """The original, its VQ reconstruction and the AVIF one at about the same size."""
    import lic
    from lic.imageio import load_image

    rgb = load_image(path).rgb
    data = lic.compress(rgb, quality=level, model=model)
    vq = Coded(f"lic-vq level {level}", np.asarray(lic.decompress(data, model=model).convert("RGB")), len(data))
    return rgb, vq, avif_near(rgb, len(data))


def scores(rgb: np.ndarray, coded: Coded) -> dict[str, float | None]:
    from lic.eval.metrics import ms_ssim, psnr
    from lic.eval.perceptual import WEIGHT_FREE

    return {"bpp": coded.bpp(rgb.shape[0] * rgb.shape[1]), "psnr": psnr(rgb, coded.rgb),
            "ms_ssim": ms_ssim(rgb, coded.rgb), **{name: metric(rgb, coded.rgb) for name, metric in WEIGHT_FREE.items()}}


def crop_figure(paths: list[Path], model: str, level: int, out: Path | None, crop: int = 256, zoom: int = 2) -> list[dict]:
    """Codes every image both ways and returns the rates and metrics; with `out`, also
    writes the figure (one row per image: original, lic-vq, AVIF crops from the image
    centre, enlarged `zoom` times without interpolation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    fig, axes = plt.subplots(len(paths), 3, figsize=(3 * 3.2, len(paths) * 3.4), squeeze=False)
    for row_axes, path in zip(axes, paths):
        rgb, vq, avif = code_image(path, model, level)
        record = {"image": path.name, "lic-vq": scores(rgb, vq), "avif": scores(rgb, avif), "avif_label": avif.label}
        rows.append(record)
        h, w = rgb.shape[:2]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        for ax, image, title in zip(row_axes, (rgb, vq.rgb, avif.rgb), (f"{path.stem}: original", vq.label, avif.label)):
            ax.imshow(image[top : top + crop, left : left + crop].repeat(zoom, 0).repeat(zoom, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
        for ax, key in zip(row_axes[1:], ("lic-vq", "avif")):
            r = record[key]
            ax.set_title(f"{ax.get_title()}\n{r['bpp']:.4f} bpp, DSS {r['dss']:.3f}, MS-SSIM {r['ms_ssim']:.3f}", fontsize=8)
    if out is not None:
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    plt.close(fig)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--model", default="vq", help="zoo name or path of a vq model file")
    parser.add_argument("--level", type=int, default=4, help="the VQ level (quality) to show")
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crop in pixels")
    parser.add_argument("--out", type=Path, default=Path("eval/results/kodak/crops/vq-crops.png"))
    parser.add_argument("--json", type=Path, help="also write the per-image rates and metrics here")
    args = parser.parse_args()
    try:
        rows = crop_figure(args.images, args.model, args.level, args.out, args.crop)
    except (LicError, ValueError) as e:
        parser.error(str(e))  # one line and exit status 2, no traceback
    for r in rows:
        print(f"{r['image']}: " + "  ".join(
            f"{k} {r[k]['bpp']:.4f} bpp DSS {r[k]['dss']:.3f} HaarPSI {r[k]['haarpsi']:.3f} MS-SSIM {r[k]['ms_ssim']:.3f}"
            for k in ("lic-vq", "avif")) + f"  ({r['avif_label']})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
