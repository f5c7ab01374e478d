"""Plain helpers the test modules import (`from helpers import ...`); fixtures live in conftest.py.

pytest puts this folder on sys.path (`pythonpath` in pyproject.toml), so the tests run the
same with `pytest` and `python -m pytest`, from any folder, without `tests` being a package.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "samples"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def run_lic(*args, **kwargs):
    """Runs `lic ARGS` in this process (arguments may be paths or numbers; `input=` feeds
    stdin) and returns click's Result: exit_code and output (stdout and stderr together).
    The suite's one way to call the command short of a subprocess."""
    from typer.testing import CliRunner

    from lic.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus mild texture: compresses like a photo, unlike pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([128 + 100 * np.sin(xx / 17 + c) * np.cos(yy / 23 - c) for c in range(3)], axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def photo_folder(folder: Path, *images: tuple[str, int, int]) -> Path:
    """A tiny test set: `folder` made with a `photo_like` PNG per (name, height, width),
    seeded 1, 2, ... in order."""
    folder.mkdir()
    for seed, (name, height, width) in enumerate(images, 1):
        Image.fromarray(photo_like(height, width, seed=seed)).save(folder / name)
    return folder


def assert_same_pixels_everywhere(data: bytes, model: Path, tmp_path: Path) -> None:
    """Decoding `data` twice, with one thread and in a fresh two-thread process gives one image."""
    import lic

    first = np.asarray(lic.decompress(data, model=str(model)))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = np.asarray(lic.decompress(data, model=str(model)))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(first, np.asarray(lic.decompress(data, model=str(model))))
    assert np.array_equal(first, single)
    (tmp_path / "x.lic").write_bytes(data)
    script = (
        "import hashlib, numpy, lic, pathlib, torch; torch.set_num_threads(2);"
        f"d = pathlib.Path({str(tmp_path / 'x.lic')!r}).read_bytes();"
        f"print(hashlib.sha256(numpy.asarray(lic.decompress(d, model={str(model)!r})).tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(first.tobytes()).hexdigest()


def assert_one_line_error(r, message: str) -> None:
    """A CLI result (Typer's runner) that failed as the house rules say: one line, exit 1."""
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.output.startswith("lic: error:") and r.output.count("\n") == 1 and message in r.output, r.output


def with_fixed_crc(data: "bytes | bytearray") -> bytes:
    """`data` with its trailing CRC-32 recomputed: what a crafted file looks like."""
    fixed = bytearray(data)
    fixed[-4:] = struct.pack("<I", zlib.crc32(bytes(fixed[:-4])))
    return bytes(fixed)


def with_other_digest(data: bytes) -> bytes:
    """`data` with the header's entropy-parameter check changed and a valid CRC again:
    what a decoder that derives other probabilities than the encoder would see."""
    damaged = bytearray(data)
    damaged[12] ^= 0xFF
    return with_fixed_crc(damaged)


def moving_clip(frames: int, height: int = 64, width: int = 96, seed: int = 0) -> list[np.ndarray]:
    """A photo-like picture panning by (1, 2) px a frame, with a square moving the other way."""
    big = photo_like(height + 4 * frames, width + 4 * frames, seed)
    out = []
    for t in range(frames):
        frame = big[t : t + height, 2 * t : 2 * t + width].copy()
        frame[20 : 36, 40 - 3 * t : 56 - 3 * t] = (200, 40, 40)
        out.append(frame)
    return out


def clip(frames: int = 8, size: int = 64) -> list[np.ndarray]:
    """A camera pan over a photo-like picture, plus per-frame noise: no two frames alike."""
    scene = photo_like(size + frames, size + 2 * frames, seed=3)
    rng = np.random.default_rng(4)
    return [np.clip(scene[i:i + size, 2 * i:2 * i + size].astype(int) + rng.integers(-3, 4, (size, size, 3)),
                    0, 255).astype(np.uint8) for i in range(frames)]


def write(path, frames, fps=25, **kwargs):
    """Frames to a lossless clip or PNG folder at `path` (`lic.video.io.VideoWriter`)."""
    from lic.video.io import VideoWriter

    with VideoWriter(path, fps, frames[0].shape[1], frames[0].shape[0], **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
