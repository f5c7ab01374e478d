"""The effort and rate-control sweeps: real rows, resumable, and summaries that read them."""

import pytest
from PIL import Image

from helpers import photo_like
from lic.eval import effort, rate_sweep


def _images(tmp_path, count=2):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(count):
        Image.fromarray(photo_like(64, 64, seed=20 + i)).save(folder / f"im{i}.png")
    return sorted(folder.glob("*.png"))


@pytest.mark.slow
def test_effort_sweep_rows_resume_and_summarise(tmp_path):
    images, out = _images(tmp_path), tmp_path / "effort.csv"
    effort.sweep(images, [1, 5], [0, 1], "cpu", out)
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == list(effort.FIELDS) and len(lines) == 1 + 2 * 2 * 2
    effort.sweep(images, [1, 5], [0, 1], "cpu", out)  # everything done: nothing is added
    assert out.read_text().splitlines() == lines
    text = effort.summary(out)
    assert "effort 1 (2 images): BD-rate" in text and "process CPU time" in text


def test_rate_sweep_meets_its_targets_and_summarises(tmp_path):
    images, out = _images(tmp_path, 1), tmp_path / "rate.csv"
    rate_sweep.sweep(images, rate_sweep.targets(4, 0.5, 1.5), "cpu", out, jobs=1)
    text = rate_sweep.summary(out)
    assert "bpp targets: 4 rows, 4 ok" in text and "bytes targets: 4 rows, 4 ok" in text
    assert "0 exceeded" in text


def test_targets_are_log_spaced_between_the_ends():
    t = rate_sweep.targets(20)
    assert len(t) == 20 and t[0] == 0.15 and t[-1] == 1.5 and t == sorted(t)
