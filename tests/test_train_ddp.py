"""Data-parallel training through torchrun (gloo on CPU): N processes follow one process."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

import lic
from lic.train.common import load_checkpoint
from helpers import photo_like, run_lic

OPTIONS = ["--N", "8", "--M", "12", "--batch", "4", "--crop", "64", "--val-every", "0", "--save-every", "1000"]


def _one_process(data, out, steps):
    r = run_lic("train", str(data), "--out", str(out), "--steps", str(steps), *OPTIONS)
    assert r.exit_code == 0, r.output


def _two_processes(data, out, steps):
    """The documented path: torchrun (`python -m torch.distributed.run` is the same program)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "lic.cli", "train", str(data), "--out", str(out), "--steps", str(steps), *OPTIONS]
    r = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def _run(out):
    return json.loads((out / "run.json").read_text()), load_checkpoint(out / "checkpoint.pt")["model"]


def _max_weight_difference(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].numel())


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    data = tmp_path / "images"
    data.mkdir()
    for i in range(4):
        Image.fromarray(photo_like(96, 112, seed=i)).save(data / f"{i}.png")
    _one_process(data, tmp_path / "one", 20)
    printed = _two_processes(data, tmp_path / "two", 20)
    assert printed.count("20 steps in") == 1  # rank 0 alone reports
    one, one_weights = _run(tmp_path / "one")
    two, two_weights = _run(tmp_path / "two")
    assert two["processes"] == 2 and two["steps_done"] == 20
    assert abs(two["last"]["loss"] - one["last"]["loss"]) <= 1e-3 * abs(one["last"]["loss"])
    assert _max_weight_difference(one_weights, two_weights) <= 1e-4
    logged = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 1 and logged[0]["final"]  # one writer
    model = str(tmp_path / "two" / "model.safetensors")
    assert lic.decompress(lic.compress(photo_like(40, 40), quality=3, model=model), model=model).size == (40, 40)

    # Resume with another world size: 2 processes continue a 1-process run.
    _one_process(data, tmp_path / "resumed", 10)
    _two_processes(data, tmp_path / "resumed", 20)
    _one_process(data, tmp_path / "one-resumed", 10)
    _one_process(data, tmp_path / "one-resumed", 20)
    assert _max_weight_difference(_run(tmp_path / "resumed")[1], _run(tmp_path / "one-resumed")[1]) <= 1e-4
