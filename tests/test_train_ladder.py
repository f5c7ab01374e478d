"""`lic train --ladder`: every quality trained and exported within --minutes, resumable."""

import json

import pytest

import lic
from lic.models import read_model_file
from lic.train.common import load_weights
from helpers import photo_like, run_lic

TINY = ["--N", "8", "--M", "12", "--batch", "4", "--crop", "64", "--val-every", "0"]


class StepClock:
    """A stand-in for `time.monotonic` that advances `tick` seconds at every reading: the
    planner then sees a steady machine, and its plan can be checked against the budget without
    depending on how fast (or how loaded) the machine running the test is."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture()
def clock(monkeypatch):
    import lic.train.common
    import lic.train.ladder

    fake = StepClock(0.02)
    monkeypatch.setattr(lic.train.common, "time", fake)
    monkeypatch.setattr(lic.train.ladder, "time", fake)
    return fake


def _ladder(images, out, qualities, *extra):
    return run_lic("train", str(images), "--out", str(out), *TINY, "--ladder", qualities, *extra)


def _decodes(model_dir, quality):
    model = str(model_dir / f"hyperprior-q{quality}.safetensors")
    data = lic.compress(photo_like(48, 64, seed=9), quality=quality, model=model)
    assert lic.read_header(data).quality == quality
    return lic.decompress(data, model=model).size == (64, 48)


@pytest.mark.slow
def test_ladder_plans_its_minute_and_exports_every_quality(images, tmp_path, clock):
    out = tmp_path / "ladder"
    r = _ladder(images, out, "1-8", "--minutes", "1")
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert 0.9 * 60 <= run["wall_seconds"] <= 60, run["wall_seconds"]  # by the planner's clock
    assert run["finished"] and set(run["phases"]) == {"trunk", "ladder"}
    assert all(p["images_per_s"] > 0 for p in run["phases"].values())
    for q in range(1, 9):
        assert read_model_file(out / "model" / f"hyperprior-q{q}.safetensors").quality == q
        assert _decodes(out / "model", q)
    manifest = json.loads((out / "state" / "manifest.json").read_text())
    steps = {k: (m["step"], m["steps"]) for k, m in manifest["models"].items()}
    assert all(done >= 0.9 * planned for done, planned in steps.values()), steps  # the lr drop was reached
    assert all(steps[f"q{q}"][0] > 0 for q in range(1, 9))
    state = load_weights(out / "state" / "q3.safetensors")
    assert state["gaussian_conditional.likelihood_lower_bound.bound"] == 1e-9  # carried as float32


@pytest.mark.slow
def test_ladder_resumes_with_the_same_command(images, tmp_path, clock):
    out = tmp_path / "ladder"
    sessions = []
    for _ in range(6):
        r = _ladder(images, out, "2,5", "--minutes", "0.3", "--max-minutes", "0.12", "--quality", "2")
        assert r.exit_code == 0, r.output
        sessions.append(r.output)
        if "resume" not in r.output:
            break
    assert len(sessions) >= 2 and "resume" in sessions[0]
    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and sorted(run["exported"]) == ["2", "5"]
    assert run["wall_seconds"] <= 0.3 * 60  # every session's time counted, by the planner's clock
    assert _decodes(out / "model", 5)
