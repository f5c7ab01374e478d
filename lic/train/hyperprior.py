"""Training the mean-scale hyperprior: RD loss, resumable loop, real-bitstream validation.

Loss: `lambda * 255**2 * MSE + bpp` (or `lambda * (1 - MS-SSIM) + bpp`), with CompressAI's
auxiliary loss training the factorized prior's quantiles. Validation exports the model the
way it ships (integer h_s, integer CDFs) and measures bpp from the real .lic bytes.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
from tqdm import tqdm

from lic import bitstream
from lic.api import decode_with, encode_with
from lic.codecs.hyperprior import HyperpriorCodec
from lic.codecs.hyperprior_net import LAMBDAS_MSE, LAMBDAS_MSSSIM, MeanScaleHyperprior, rd_loss
from lic.eval import metrics
from lic.export.hyperprior import calibration_batch, export
from lic.imageio import load_image
from lic.train.common import (
    Budget, JsonLog, RunConfig, Throughput, apply_lr, autocast, hardware, restore, save_checkpoint, save_weights,
)
from lic.train.data import CropSampler, image_files, training_images
from lic.train.distributed import World, join, leave
from lic.train.noise import GlobalBatchNoise

@dataclass(kw_only=True)
class HyperpriorTrainConfig(RunConfig):
    quality: int = 3
    lmbda: float | None = None  # default: the ladder's value for `quality`
    metric: str = "mse"  # or "ms-ssim"
    N: int = 128
    M: int = 192
    steps: int = 100_000
    batch: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    val_every: int = 1000
    name: str = "hyperprior"
    data_parallel: ClassVar[bool] = True

    def resolved_lambda(self) -> float:
        ladder = LAMBDAS_MSE if self.metric == "mse" else LAMBDAS_MSSSIM
        return self.lmbda if self.lmbda is not None else ladder[self.quality]

    def model_config(self) -> dict:
        """The config recorded in the exported model file."""
        return {"name": self.name, "family": "hyperprior", "quality": self.quality, "N": self.N, "M": self.M,
                "lambda": self.resolved_lambda(), "metric": self.metric}

    def sampler(self, images: list[torch.Tensor], device: torch.device, seed: int, part: tuple[int, int]) -> CropSampler:
        """The stream of training batches (float [0, 1]) this family learns from."""
        return CropSampler(images, self.crop, self.batch, device, seed, part)

    def calibration(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Fixed inputs that set the integer h_s's activation ranges at every export."""
        return calibration_batch(images)

    def export_tensors(self, model: MeanScaleHyperprior, calibration: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensors of the exported model file (float16 transforms; `lic quantize` makes smaller ones)."""
        return export(model, calibration)


def validate(model: MeanScaleHyperprior, calibration: torch.Tensor, images: list[Path], cfg: HyperpriorTrainConfig) -> dict:
    """Kodak-style validation through the real codec: bpp from .lic bytes, PSNR, MS-SSIM."""
    codec = HyperpriorCodec(export(model, calibration), cfg.model_config(), torch.device("cpu"))
    rows = []
    for path in images:
        source = load_image(path)
        data = encode_with(codec, source, cfg.quality, b"\0\0\0\0")
        header, streams = bitstream.unpack(data)
        decoded = load_image(decode_with(codec, header, streams))
        rows.append({
            "bpp": 8 * len(data) / (source.width * source.height),
            "psnr": metrics.psnr(source.rgb, decoded.rgb),
            "ms_ssim": metrics.ms_ssim(source.rgb, decoded.rgb),
        })
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


class Trainer:
    """One quality's model, optimisers, crop stream and step counter: `train` runs one, the
    ladder (`lic.train.ladder`) runs several side by side. Works alone or as one rank of a
    torchrun world (`lic.train.distributed`)."""

    def __init__(self, cfg: HyperpriorTrainConfig, world: World, images: list[torch.Tensor],
                 start_step: int = 0) -> None:
        """start_step: the step count of `cfg.init` weights when they continue a run (the ladder's
        carried state); a checkpoint.pt in `cfg.out` takes precedence."""
        self.cfg, self.world = cfg, world
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        world.check_batch(cfg.batch)
        torch.manual_seed(cfg.seed)
        self.lmbda = cfg.resolved_lambda()
        self.model = MeanScaleHyperprior(cfg.N, cfg.M)
        self.aux_params = [p for n, p in self.model.named_parameters() if n.endswith(".quantiles")]
        self.main_params = [p for n, p in self.model.named_parameters() if not n.endswith(".quantiles")]
        self.opt = torch.optim.Adam(self.main_params, lr=cfg.lr)
        self.aux_opt = torch.optim.Adam(self.aux_params, lr=cfg.aux_lr)
        self.ckpt_path = self.out / "checkpoint.pt"
        state = restore(self.ckpt_path, cfg.init, world.device, {"model": self.model},
                        {"opt": self.opt, "aux_opt": self.aux_opt})
        if state:
            print(f"resuming {self.ckpt_path} at step {state['step']}", file=sys.stderr)
        elif cfg.init:
            print(f"initialised from {cfg.init}", file=sys.stderr)
        self.step = state.get("step", start_step)
        self.images_seen = state.get("images_seen", start_step * cfg.batch)
        self.elapsed_before = state.get("elapsed", 0.0)
        self.noise = GlobalBatchNoise(cfg.seed, world.part, world.device)
        self.noise.install(self.model)
        self.net = world.wrap(self.model)
        self.sampler = cfg.sampler(images, world.device, cfg.seed + self.step, world.part)
        self.log = JsonLog(self.out / "log.jsonl")
        self.meter = Throughput()
        self.last: dict[str, float] = {}  # global-batch loss, bpp, psnr at the last logged step
        self.net.train()

    def advance(self, elapsed: float) -> None:
        """One optimisation step on the global batch (this rank's share of it)."""
        cfg, device = self.cfg, self.world.device
        lr = apply_lr(cfg.lr, self.step, cfg.steps, cfg.decay_at, self.opt)
        x = self.sampler()
        self.noise.start_step(self.step)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, cfg.amp):
            result = self.net(x)
        loss = rd_loss(result, x, self.lmbda, cfg.metric)
        self.opt.zero_grad(set_to_none=True)
        loss["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.main_params, 1.0)
        self.opt.step()
        aux_loss = self.model.aux_loss()
        self.aux_opt.zero_grad(set_to_none=True)
        aux_loss.backward()
        self.world.average_grads(self.aux_params)
        self.aux_opt.step()
        self.step += 1
        self.images_seen += cfg.batch
        self.meter.add(cfg.batch)
        if self.step % 10 == 0 or self.step == cfg.steps:
            values = self.world.mean(torch.stack([loss["loss"], loss["bpp"], loss["mse"], aux_loss]).detach().float())
            total, bpp, mse, aux = values.tolist()
            self.last = {"loss": total, "bpp": bpp, "psnr": -10 * math.log10(max(mse, 1e-10)), "aux": aux,
                         "images_per_s": self.meter.rate}
            if self.step % 100 == 0 and self.world.is_main:
                self.log.write({"step": self.step, **self.last, "lr": lr, "elapsed_s": elapsed})
                self.meter.reset()

    def checkpoint(self, elapsed: float) -> None:
        if not self.world.is_main:
            return
        save_weights(self.out / "weights.safetensors", self.model)
        save_checkpoint(self.ckpt_path, {
            "model": self.model.state_dict(), "opt": self.opt.state_dict(), "aux_opt": self.aux_opt.state_dict(),
            "step": self.step, "elapsed": elapsed, "images_seen": self.images_seen,
            "torch_rng": torch.get_rng_state(), "config": json.dumps(asdict(self.cfg)),
        })

    def export(self, path: Path, calibration: torch.Tensor):
        """The model file as it ships (`lic.models.save_model_file`); rank 0 only."""
        from lic.models import save_model_file

        self.model.eval()
        model_file = save_model_file(path, self.cfg.export_tensors(self.model, calibration), self.cfg.model_config())
        self.net.train()
        return model_file


def train(cfg: HyperpriorTrainConfig) -> dict:
    """Trains one quality to `cfg.steps` (or `--max-minutes`); alone or under torchrun."""
    world = join(cfg.device)
    images = training_images(cfg, world.device)
    trainer = Trainer(cfg, world, images)
    calibration = cfg.calibration(images)
    val_images = image_files(Path(cfg.val_dir))[: cfg.val_images] if cfg.val_dir and world.is_main else []
    budget = Budget(cfg.max_minutes, trainer.elapsed_before)

    bar = tqdm(total=cfg.steps, initial=trainer.step, desc=f"q{cfg.quality} λ={trainer.lmbda:g}",
               dynamic_ncols=True, disable=not world.is_main)
    while trainer.step < cfg.steps:
        trainer.advance(budget.elapsed)
        step = trainer.step
        if trainer.last and step % 10 == 0:
            bar.set_postfix(loss=f"{trainer.last['loss']:.3f}", bpp=f"{trainer.last['bpp']:.3f}",
                            psnr=f"{trainer.last['psnr']:.2f}", img_s=f"{trainer.last['images_per_s']:.1f}")
        bar.update(step - bar.n)
        if val_images and cfg.val_every and step % cfg.val_every == 0:
            trainer.model.eval()
            v = validate(trainer.model, calibration, val_images, cfg)
            trainer.net.train()
            trainer.log.write({"step": step, "val": v})
            bar.write(f"step {step}: validation bpp {v['bpp']:.4f}  PSNR {v['psnr']:.2f} dB  MS-SSIM {v['ms_ssim']:.4f}")
        if step % cfg.save_every == 0:
            trainer.checkpoint(budget.elapsed)
        if world.any(budget.session_over())[0]:
            bar.write(f"--max-minutes reached at step {step}; resume with the same command")
            break
    bar.close()
    trainer.checkpoint(budget.elapsed)
    summary = {
        "config": asdict(cfg), "model": cfg.model_config(), "steps_done": trainer.step,
        "images_seen": trainer.images_seen, "wall_seconds": round(budget.elapsed, 1),
        "hardware": hardware(world.device), "processes": world.size,
        "images_per_second": round(trainer.images_seen / max(budget.elapsed, 1e-9), 2),
        "last": trainer.last, "finished": trainer.step >= cfg.steps, "rank": world.rank,
    }
    if world.is_main:
        model_file = trainer.export(Path(cfg.out) / "model.safetensors", calibration)
        summary["model_hash"] = model_file.hash.hex()
        if val_images:
            trainer.model.eval()
            summary["validation"] = validate(trainer.model, calibration, val_images, cfg)
        trainer.log.write({"step": trainer.step, "final": True, "val": summary.get("validation")})
        (Path(cfg.out) / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    leave(world)
    return summary
