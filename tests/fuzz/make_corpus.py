"""Writes the fuzzer's seed corpus: valid .lic files of small crops, both codecs, several qualities.

    python tests/fuzz/make_corpus.py runs/fuzz/corpus

Small images keep each execution in the tens of milliseconds; greyscale and alpha crops
reach the flag and alpha-stream paths too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

import lic

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "landscape.png"
SETTINGS = [("hyperprior", q) for q in (1, 3, 6, 8)] + [("vq", q) for q in (1, 4, 8)]


def crops() -> dict[str, np.ndarray]:
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    alpha = np.linspace(0, 255, 40 * 24).astype(np.uint8).reshape(40, 24, 1)
    return {
        "rgb64x96": rgb[:64, :96],
        "rgb17x33": rgb[100:117, 50:83],
        "grey32x32": rgb[:32, :32, 1],
        "rgba40x24": np.concatenate([rgb[:40, :24], alpha], axis=2),
    }


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in crops().items():
        for model, quality in SETTINGS:
            (folder / f"{model}-q{quality}-{name}.lic").write_bytes(lic.compress(image, quality, model))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/fuzz/make_corpus.py CORPUS_FOLDER")
    main(Path(sys.argv[1]))
