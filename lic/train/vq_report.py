"""Real-bitstream measurements of an exported VQ model, level by level.

For every level and image: the size of the .lic file (bpp), what the same indices
cost with the context model, with the static per-level table alone and with no entropy
coding (log2(K)/256 bpp) -- the file holds the shorter of the first and the last --
and PSNR / MS-SSIM of the decoded picture. Used for validation at the end of training and
for the numbers in the model card (`python -m lic.train.vq_report MODEL IMAGES...`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import constriction
import numpy as np

from lic import bitstream
from lic.api import decode_with, encode_with
from lic.codecs.base import as_pixels, pad_to_multiple
from lic.entropy import encode_symbols
from lic.eval import metrics
from lic.eval.perceptual import WEIGHT_FREE
from lic.imageio import load_image
from lic.models import load_codec, read_model_file
from lic.train.data import image_files


def static_bits(indices: np.ndarray, codec) -> int:
    """Bits of the index map coded with the level's static table only (no context)."""
    encoder = constriction.stream.queue.RangeEncoder()
    encode_symbols(encoder, indices.ravel(), np.zeros(indices.size, np.int64), codec.contexts[codec.level].static)
    return 32 * encoder.get_compressed().size


def _number(value: float | None) -> float:
    return float("nan") if value is None else value


def measure(model_path: Path, images: list[Path], levels: list[int] | None = None) -> dict:
    model = read_model_file(model_path)
    base = load_codec(model.path, "cpu")
    levels = levels or sorted(base.sizes)
    sources = [load_image(p) for p in images]
    report = {}
    for level in levels:
        codec = base.for_quality(level)
        rows = []
        for source in sources:
            pixels = source.width * source.height
            t0 = time.perf_counter()
            data = encode_with(codec, source, level, model.hash)
            t_enc = time.perf_counter() - t0
            header, streams = bitstream.unpack(data)
            t0 = time.perf_counter()
            decoded = load_image(decode_with(codec, header, streams))
            t_dec = time.perf_counter() - t0
            x, _, _ = pad_to_multiple(as_pixels(source.rgb), codec.stride)
            indices = codec.analyse(x)
            index_bits = 8 * len(codec.contexts[level].encode(indices)[0])  # the context model alone
            rows.append({
                "bpp": 8 * len(data) / pixels,
                "index_bpp": index_bits / pixels,
                "static_index_bpp": static_bits(indices, codec) / pixels,
                "uncoded_index_bpp": indices.size * math.log2(base.sizes[level]) / pixels,
                "psnr": metrics.psnr(source.rgb, decoded.rgb),
                "ms_ssim": metrics.ms_ssim(source.rgb, decoded.rgb) if min(source.rgb.shape[:2]) > 160 else float("nan"),
                **{name: _number(metric(source.rgb, decoded.rgb)) for name, metric in WEIGHT_FREE.items()},
                "encode_s": t_enc, "decode_s": t_dec,
            })
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        mean["K"] = base.sizes[level]
        mean["nominal_bpp"] = math.log2(base.sizes[level]) / 256
        mean["static_saving"] = 1 - mean["static_index_bpp"] / mean["uncoded_index_bpp"]
        mean["context_saving"] = 1 - mean["index_bpp"] / mean["uncoded_index_bpp"]
        report[str(level)] = mean
    return {"images": len(images), "levels": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a vq .safetensors model file")
    parser.add_argument("images", type=Path, nargs="+", help="images or folders of images")
    parser.add_argument("--levels", type=int, nargs="*", help="levels to measure (default: all)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    paths = [f for p in args.images for f in (image_files(p) if p.is_dir() else [p])]
    report = measure(args.model, paths, args.levels)
    print(f"{'level':>5} {'K':>5} {'bpp':>8} {'log2K/256':>9} {'static':>7} {'context':>7} {'PSNR':>6} {'MS-SSIM':>7} "
          f"{'DSS':>6} {'HaarPSI':>7} {'GMSD':>6} {'dec s':>6}")
    for level, r in report["levels"].items():
        print(f"{level:>5} {r['K']:>5} {r['bpp']:>8.4f} {r['nominal_bpp']:>9.4f} {r['static_saving']:>7.1%} "
              f"{r['context_saving']:>7.1%} {r['psnr']:>6.2f} {r['ms_ssim']:>7.4f} {r['dss']:>6.3f} {r['haarpsi']:>7.3f} "
              f"{r['gmsd']:>6.3f} {r['decode_s']:>6.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
