"""`lic train --ladder`: every quality of the hyperprior ladder, exported, within `--minutes`.

Phases (the time left is re-planned from measured throughput at the start of each):

1. `trunk`: one model at the trunk quality (`--quality`, default 4) from scratch or `--init`
   weights, for `trunk_share` of the training time. Skipped when `--init` is a folder with
   weights per quality (e.g. ../shared/weights/hyperprior-gpu/): each quality starts from its own.
2. `ladder`: every quality from the trunk, fine-tuned side by side in this process, one step
   each in turn (measured against one process per quality in README "Training at scale"). The
   step count comes from the measured rate and the deadline, and the learning rate drops x0.1
   for the last 10 % of each quality's steps.
3. export: OUT/model/<name>-q<Q>.safetensors per quality: a folder `lic eval -c lic-OUT/model`
   and `lic encode --model FILE` take as they are. Export time is measured up front and kept
   in reserve, so the run ends, exported, before `--minutes`.

Resumable state is carry-sized, in one folder: OUT/state/manifest.json and one
`lic.train.common.carry_state` file per model (float16 parameters, float32 buffers: 14 MB for
N=128, M=192). Re-running the same command continues every model from its last save, on any
device; Adam's moments are not carried (they would triple the state) and restart on resume.
Under torchrun every model trains data-parallel (`lic.train.distributed`); rank 0 writes.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from lic.errors import InputError
from lic.export.hyperprior import export
from lic.files import atomic_write
from lic.train.common import Budget, JsonLog, Throughput, hardware, save_weights
from lic.train.data import training_images
from lic.train.distributed import World, join, leave
from lic.train.hyperprior import HyperpriorTrainConfig, Trainer

UNPLANNED = 10**12  # step target before throughput is measured (no learning-rate drop yet)
PROBE_SECONDS = 3.0  # measured before a phase's step count is fixed


@dataclass(kw_only=True)
class LadderConfig(HyperpriorTrainConfig):
    minutes: float
    qualities: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    quality: int = 4  # the trunk's
    trunk_share: float = 0.3  # of the training time, when the trunk trains

    def __post_init__(self) -> None:
        if not 0 < self.trunk_share < 1:
            raise ValueError(f"--trunk-share must be between 0 and 1, not {self.trunk_share}")
        if self.minutes <= 0:
            raise ValueError(f"--minutes must be positive, not {self.minutes}")


class Ladder:
    def __init__(self, cfg: LadderConfig, world: World) -> None:
        self.cfg, self.world = cfg, world
        self.out = Path(cfg.out)
        self.state_dir = self.out / "state"
        self.model_dir = self.out / "model"
        path = self.state_dir / "manifest.json"
        self.manifest = json.loads(path.read_text()) if path.is_file() else {
            "format": "lic-ladder-state/1", "elapsed_s": 0.0, "models": {}, "phases": {}}
        self.manifest["config"] = asdict(cfg)
        self.budget = Budget(cfg.max_minutes, self.manifest["elapsed_s"])  # loading the data counts
        self.images = training_images(cfg, world.device)  # bad data fails before OUT is made
        self.calibration = cfg.calibration(self.images)
        for folder in (self.state_dir, self.model_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.log = JsonLog(self.out / "log.jsonl")

    def remaining(self) -> float:
        return self.cfg.minutes * 60 - self.budget.elapsed

    def trainer(self, key: str, quality: int, init: str | None, lr_drop: bool) -> Trainer:
        """The model `key` ("trunk" or "q<Q>") from its carried state if any, else from `init`."""
        saved = self.manifest["models"].get(key)
        carried = self.state_dir / f"{key}.safetensors"
        cfg = replace(self.cfg, quality=quality, lmbda=None,
                      out=str(self.out / "runs" / key), steps=saved["steps"] if saved else UNPLANNED,
                      decay_at=self.cfg.decay_at if lr_drop else 1.0,
                      init=str(carried) if saved else init)
        return Trainer(cfg, self.world, self.images, start_step=saved["step"] if saved else 0)

    def save(self, trainers: dict[str, Trainer]) -> None:
        """Carry-sized state of every model and the manifest (rank 0; manifest written last)."""
        if not self.world.is_main:
            return
        for key, t in trainers.items():
            save_weights(self.state_dir / f"{key}.safetensors", t.model)
            self.manifest["models"][key] = {"file": f"{key}.safetensors", "quality": t.cfg.quality,
                                            "lambda": t.lmbda, "step": t.step, "steps": t.cfg.steps}
        self.manifest["elapsed_s"] = round(self.budget.elapsed, 2)
        atomic_write(self.state_dir / "manifest.json", (json.dumps(self.manifest, indent=2) + "\n").encode(), force=True)

    def run_phase(self, name: str, trainers: dict[str, Trainer], end_at: float) -> bool:
        """Steps every model in turn until each reaches its planned steps or `end_at` (seconds of
        the budget) comes; False if `--max-minutes` ended this session first. The plan, from
        PROBE_SECONDS on and every round until the learning rate drops: steps = measured rate x
        time left (re-planned, so a machine that slows down still reaches its drop)."""
        cfg, world = self.cfg, self.world
        meter, start, rounds = Throughput(), self.budget.elapsed, 0
        complete, dropped = True, False
        while not all(t.step >= t.cfg.steps for t in trainers.values()):
            deadline, session_over, probed = world.any(
                self.budget.elapsed >= end_at, self.budget.session_over(), self.budget.elapsed - start >= PROBE_SECONDS)
            if deadline or session_over:
                complete = not session_over
                break
            for t in trainers.values():
                t.advance(self.budget.elapsed)
            rounds += 1
            meter.add(cfg.batch * len(trainers))
            if not dropped and probed:
                rounds_left = rounds / (self.budget.elapsed - start) * (end_at - self.budget.elapsed)
                more = max(int(world.mean(torch.tensor([rounds_left], device=world.device)).item()), 1)  # same on every rank
                for t in trainers.values():
                    t.cfg.steps = t.step + more
                dropped = all(t.step >= t.cfg.decay_at * t.cfg.steps for t in trainers.values())
            if rounds % cfg.save_every == 0:
                self.save(trainers)
        seconds = self.budget.elapsed - start
        print(f"{name}: {rounds} steps of {len(trainers)} model(s) in {seconds:.1f} s, "
              f"{meter.rate:.1f} images/s", file=sys.stderr)
        before = self.manifest["phases"].get(name, {"rounds": 0, "seconds": 0.0})  # earlier sessions
        rounds, seconds = before["rounds"] + rounds, before["seconds"] + seconds
        record = {"phase": name, "done": complete, "models": len(trainers), "rounds": rounds,
                  "seconds": round(seconds, 2), "images_per_s": round(rounds * cfg.batch * len(trainers) / max(seconds, 1e-9), 2),
                  "steps": {k: t.step for k, t in trainers.items()}}
        self.manifest["phases"][name] = record
        self.save(trainers)
        if world.is_main:
            self.log.write(record)
        return complete

    def done(self, phase: str) -> bool:
        return self.manifest["phases"].get(phase, {}).get("done", False)

    def export_reserve(self, trainer: Trainer) -> float:
        """Seconds kept for the exports: one export timed, x the models, x1.5, + 1 s."""
        if "export_reserve_s" not in self.manifest:
            t0 = time.monotonic()
            export(trainer.model, self.calibration)
            self.manifest["export_reserve_s"] = round(1.5 * len(self.cfg.qualities) * (time.monotonic() - t0) + 1.0, 2)
        return self.manifest["export_reserve_s"]

    def run(self) -> dict:
        cfg = self.cfg
        init = Path(cfg.init) if cfg.init else None
        if init and init.is_dir():
            inits = _per_quality_init(init, cfg.qualities)
        else:
            if not self.done("trunk"):
                trunk = self.trainer("trunk", cfg.quality, cfg.init, lr_drop=False)
                reserve = self.export_reserve(trunk)
                self.manifest.setdefault("trunk_end_s", round(
                    self.budget.elapsed + cfg.trunk_share * (self.remaining() - reserve), 2))
                if not self.run_phase("trunk", {"trunk": trunk}, self.manifest["trunk_end_s"]):
                    return self.finish()
            self.world.barrier()  # rank 0 has written the trunk that every rank starts from
            inits = {q: str(self.state_dir / "trunk.safetensors") for q in cfg.qualities}
        trainers = {f"q{q}": self.trainer(f"q{q}", q, inits[q], lr_drop=True) for q in cfg.qualities}
        end = cfg.minutes * 60 - self.export_reserve(trainers[f"q{cfg.qualities[0]}"])
        if not self.done("ladder") and not self.run_phase("ladder", trainers, end):
            return self.finish()
        return self.finish(trainers)

    def finish(self, trainers: dict[str, Trainer] | None = None) -> dict:
        """Exports every quality when `trainers` are done (None: stopped early, resumable)."""
        world, done = self.world, trainers is not None
        exported = {}
        if done and world.is_main:
            for key, t in trainers.items():
                path = self.model_dir / f"{self.cfg.name}-q{t.cfg.quality}.safetensors"
                exported[t.cfg.quality] = {"file": str(path), "hash": t.export(path, self.calibration).hash.hex(),
                                           "steps": t.step}
            self.manifest["exported"] = {str(q): e for q, e in exported.items()}
            self.save({})
        summary = {"finished": done, "wall_seconds": round(self.budget.elapsed, 1), "minutes": self.cfg.minutes,
                   "hardware": hardware(world.device), "processes": world.size, "exported": exported,
                   "phases": self.manifest["phases"], "rank": world.rank}
        if world.is_main:
            (self.out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def _per_quality_init(folder: Path, qualities: tuple[int, ...]) -> dict[int, str]:
    """The weights of each quality in `folder`: the one file whose name ends in q<Q>.safetensors."""
    found = {}
    for q in qualities:
        matches = sorted(folder.glob(f"*q{q}.safetensors"))
        if len(matches) != 1:
            raise InputError(f"{folder}: expected one *q{q}.safetensors for quality {q}, found {len(matches)}")
        found[q] = str(matches[0])
    return found


def train_ladder(cfg: LadderConfig) -> dict:
    world = join(cfg.device)
    try:
        return Ladder(cfg, world).run()
    finally:
        leave(world)
