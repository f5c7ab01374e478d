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

import torch
from pytorch_msssim import ms_ssim
from tqdm import tqdm

from lic import bitstream
from lic.api import decode_with, encode_with
from lic.codecs.hyperprior import HyperpriorCodec, MeanScaleHyperprior, export
from lic.eval import metrics
from lic.imageio import load_image
from lic.train.common import (
    Budget, JsonLog, RunConfig, autocast, hardware, load_checkpoint, load_weights, pick_device, place,
    save_checkpoint, save_weights,
)
from lic.train.data import image_files, training_data

#: CompressAI's MSE lambda ladder (quality 1..8).
LAMBDAS_MSE = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
#: CompressAI's MS-SSIM lambda ladder (quality 1..8).
LAMBDAS_MSSSIM = {1: 2.40, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.50, 7: 115.37, 8: 220.0}


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

    def resolved_lambda(self) -> float:
        ladder = LAMBDAS_MSE if self.metric == "mse" else LAMBDAS_MSSSIM
        return self.lmbda if self.lmbda is not None else ladder[self.quality]


def rd_loss(out: dict, x: torch.Tensor, lmbda: float, metric: str) -> dict[str, torch.Tensor]:
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log2(l.float()).sum() for l in out["likelihoods"].values()) / -pixels
    x_hat = out["x_hat"].float()
    mse = torch.mean((x_hat - x) ** 2)
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        distortion = 1 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0)
    return {"loss": lmbda * distortion + bpp, "bpp": bpp, "mse": mse}


def _model_config(cfg: HyperpriorTrainConfig) -> dict:
    return {"name": cfg.name, "family": "hyperprior", "quality": cfg.quality, "N": cfg.N, "M": cfg.M,
            "lambda": cfg.resolved_lambda(), "metric": cfg.metric}


def validate(model: MeanScaleHyperprior, calibration: torch.Tensor, images: list[Path], cfg: HyperpriorTrainConfig) -> dict:
    """Kodak-style validation through the real codec: bpp from .lic bytes, PSNR, MS-SSIM."""
    codec = HyperpriorCodec(export(model, calibration), _model_config(cfg), torch.device("cpu"))
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


def calibration_batch(images: list[torch.Tensor], count: int = 8, side: int = 256) -> torch.Tensor:
    """Fixed crops that set the integer h_s's activation ranges at every export."""
    picks = images[:: max(1, len(images) // count)][:count]
    side = min(side, *(min(im.shape[1:]) for im in picks))
    return torch.stack([im[:, :side, :side] for im in picks]).float().cpu() / 255


def train(cfg: HyperpriorTrainConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    lmbda = cfg.resolved_lambda()
    model = MeanScaleHyperprior(cfg.N, cfg.M)
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr)

    ckpt_path = out / "checkpoint.pt"
    step, elapsed, images_seen = 0, 0.0, 0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        aux_opt.load_state_dict(state["aux_opt"])
        step, elapsed, images_seen = state["step"], state["elapsed"], state["images_seen"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming {ckpt_path} at step {step}", file=sys.stderr)
    elif cfg.init:
        model.load_state_dict(load_weights(Path(cfg.init)))
        print(f"initialised from {cfg.init}", file=sys.stderr)

    place(device, model)
    images, sampler = training_data(cfg, device, step)
    calibration = calibration_batch(images)
    val_images = image_files(Path(cfg.val_dir))[: cfg.val_images] if cfg.val_dir else []
    log = JsonLog(out / "log.jsonl")
    budget = Budget(cfg.max_minutes, elapsed)

    def checkpoint() -> None:
        save_weights(out / "weights.safetensors", model)
        save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
            "step": step, "elapsed": budget.elapsed, "images_seen": images_seen,
            "torch_rng": torch.get_rng_state(), "config": json.dumps(asdict(cfg)),
        })

    bar = tqdm(total=cfg.steps, initial=step, desc=f"q{cfg.quality} λ={lmbda:g}", dynamic_ncols=True)
    window_start, window_images = time.monotonic(), 0
    model.train()
    while step < cfg.steps:
        lr = cfg.lr * (0.1 if step >= cfg.decay_at * cfg.steps else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        x = sampler()
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, cfg.amp):
            result = model(x)
        loss = rd_loss(result, x, lmbda, cfg.metric)
        opt.zero_grad(set_to_none=True)
        loss["loss"].backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        aux_loss = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux_loss.backward()
        aux_opt.step()
        step += 1
        images_seen += cfg.batch
        window_images += cfg.batch

        if step % 10 == 0 or step == cfg.steps:
            rate = window_images / max(time.monotonic() - window_start, 1e-9)
            psnr = -10 * math.log10(max(loss["mse"].item(), 1e-10))
            bar.set_postfix(loss=f"{loss['loss'].item():.3f}", bpp=f"{loss['bpp'].item():.3f}",
                            psnr=f"{psnr:.2f}", img_s=f"{rate:.1f}")
            bar.update(step - bar.n)
            if step % 100 == 0:
                log.write({"step": step, "loss": loss["loss"].item(), "bpp": loss["bpp"].item(),
                           "psnr": psnr, "aux": aux_loss.item(), "images_per_s": rate, "lr": lr,
                           "elapsed_s": budget.elapsed})
                window_start, window_images = time.monotonic(), 0
        if val_images and cfg.val_every and step % cfg.val_every == 0:
            model.eval()
            v = validate(model, calibration, val_images, cfg)
            model.train()
            log.write({"step": step, "val": v})
            bar.write(f"step {step}: validation bpp {v['bpp']:.4f}  PSNR {v['psnr']:.2f} dB  MS-SSIM {v['ms_ssim']:.4f}")
        if step % cfg.save_every == 0:
            checkpoint()
        if budget.session_over():
            bar.write(f"--max-minutes reached at step {step}; resume with the same command")
            break
    bar.close()
    checkpoint()

    model.eval()
    from lic.models import save_model_file

    config = _model_config(cfg)
    model_file = save_model_file(out / "model.safetensors", export(model, calibration), config)
    summary = {
        "config": asdict(cfg), "model": config, "steps_done": step, "images_seen": images_seen,
        "wall_seconds": round(budget.elapsed, 1), "hardware": hardware(device),
        "images_per_second": round(images_seen / max(budget.elapsed, 1e-9), 2),
        "model_hash": model_file.hash.hex(), "finished": step >= cfg.steps,
    }
    if val_images:
        summary["validation"] = validate(model, calibration, val_images, cfg)
    log.write({"step": step, "final": True, "val": summary.get("validation")})
    (out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
