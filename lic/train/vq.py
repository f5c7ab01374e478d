"""Training the VQ codec: autoencoder, then reduced codebooks per level, then entropy model.

Phases (each resumable from OUT/checkpoint.pt; re-run the same command to continue):

1. `main`: encoder, quantiser and decoder from scratch. Loss: L1 + (1 - MS-SSIM) + the
   quantiser's commitment term; from `disc_start` on, a patch discriminator adds a hinge GAN
   loss (balanced against the reconstruction gradient, as in VQGAN) and feature matching;
   optionally LPIPS when its weights are on this machine. Codebook usage and perplexity are
   logged so that a collapsing codebook is seen early.
2. `levels`: for every level, the full codebook is reduced to K entries by usage-weighted
   spherical k-means and the reduced codebook is fine-tuned with encoder and decoder frozen
   (`lic.train.vq_levels`).
3. export: the index maps of the training images at every level fit the context model
   (`lic.train.vq_context`), and `lic.codecs.vq.export` writes OUT/model.safetensors.
   Validation codes real files and reports bpp against log2(K)/256.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from tqdm import tqdm

from lic.codecs.vq_model import VQArchitecture, VQAutoencoder
from lic.train import gan
from lic.train.common import (
    Budget, JsonLog, RunConfig, Throughput, apply_lr, autocast, hardware, pick_device, restore, save_checkpoint,
    save_weights,
)
from lic.train.data import image_files, load_images, training_data

@dataclass(kw_only=True)
class VQTrainConfig(RunConfig):
    channels: tuple[int, ...] = (32, 64, 128, 192)  # 3.0 M parameters: 7.3 MB with all levels
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    code_dim: int = 16
    codebook_size: int = 4096
    levels: int = 8  # level L keeps K = 2**(L + 4) codes: 32 ... 4096
    steps: int = 40_000
    batch: int = 16
    lr: float = 2e-4
    l1_weight: float = 1.0
    msssim_weight: float = 1.0
    lpips_weight: float = 0.0
    commitment: float = 0.25
    dead_code_fraction: float = 0.1  # restart codes used less than this share of the average
    disc_start: int = 15_000  # step at which the GAN losses start (>= steps: never)
    disc_weight: float = 0.5
    feature_matching: float = 1.0
    disc_channels: int = 64
    level_steps: int = 300  # fine-tuning steps per reduced codebook
    level_lr: float = 1e-3
    context_rank: int = 8
    context_epochs: int = 8
    stats_images: int = 0  # training images whose index maps fit the entropy model (0: all)
    val_every: int = 2000
    name: str = "vq"

    def __post_init__(self) -> None:
        self.arch  # validates channels and blocks
        if self.crop % 16 or self.crop < 32:
            raise ValueError(f"--crop must be a multiple of 16 and at least 32, not {self.crop}")
        if self.codebook_size < 2 ** (self.levels + 4):
            raise ValueError(f"{self.levels} levels need a codebook of at least {2 ** (self.levels + 4)} codes")

    @property
    def arch(self) -> VQArchitecture:
        return VQArchitecture(tuple(self.channels), tuple(self.blocks), self.code_dim, self.codebook_size)

    def level_sizes(self) -> dict[int, int]:
        return {level: 2 ** (level + 4) for level in range(1, self.levels + 1)}


def msssim_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM. pytorch-msssim needs sides above 16 * (window - 1); crops of 160 px or
    less get a narrower Gaussian window than the standard 11 (e.g. 7 for 128 px crops)."""
    side = min(x.shape[-2:])
    window = 11
    while window > 3 and 16 * (window - 1) >= side:
        window -= 2
    return 1 - ms_ssim(x_hat.float().clamp(0, 1), x.float(), data_range=1.0, win_size=window)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, cfg: VQTrainConfig, lpips=None) -> dict[str, torch.Tensor]:
    l1 = F.l1_loss(x_hat.float(), x)
    msssim = msssim_loss(x_hat, x)
    total = cfg.l1_weight * l1 + cfg.msssim_weight * msssim
    out = {"l1": l1, "msssim": msssim}
    if lpips is not None:
        out["lpips"] = lpips(x_hat.float() * 2 - 1, x * 2 - 1).mean()
        total = total + cfg.lpips_weight * out["lpips"]
    out["rec"] = total
    return out


def lpips_loss(device: torch.device) -> torch.nn.Module:
    """LPIPS (VGG) as a frozen loss, from weights already in the torch cache (never fetched)."""
    from lic.errors import InputError
    from lic.eval.perceptual import backbone_checkpoint, lpips_network

    path = backbone_checkpoint("vgg")
    if not path.is_file():
        raise InputError(f"--lpips-weight needs the VGG-16 weights at {path} (lic never downloads them)")
    return lpips_network("vgg", path).requires_grad_(False).to(device)


class UsageMeter:
    """Histogram of the codes chosen since the last report: share in use and perplexity."""

    def __init__(self, size: int) -> None:
        self.counts = torch.zeros(size, dtype=torch.float64)

    def add(self, indices: torch.Tensor) -> None:
        self.counts += torch.bincount(indices.flatten().cpu(), minlength=self.counts.numel()).double()

    def report(self) -> dict[str, float]:
        p = self.counts / self.counts.sum().clamp(min=1)
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        out = {"codes_used": int((self.counts > 0).sum()), "perplexity": float(entropy.exp())}
        self.counts.zero_()
        return out


def _dead_code_threshold(cfg: VQTrainConfig) -> float:
    """EMA count below which a code is restarted: a share of the average code's count."""
    vectors_per_step = cfg.batch * (cfg.crop // 16) ** 2
    return cfg.dead_code_fraction * vectors_per_step / cfg.codebook_size


def train(cfg: VQTrainConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = VQAutoencoder(cfg.arch, _dead_code_threshold(cfg), cfg.commitment)
    disc = gan.PatchDiscriminator(cfg.disc_channels)
    gen_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(gen_params, lr=cfg.lr, betas=(0.5, 0.9))
    disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))

    ckpt_path = out / "checkpoint.pt"
    state = restore(ckpt_path, cfg.init, device, {"model": model, "disc": disc}, {"opt": opt, "disc_opt": disc_opt})
    if state:
        print(f"resuming {ckpt_path} at step {state['step']} ({len(state['levels'])} levels done)", file=sys.stderr)
    else:
        state = {"step": 0, "elapsed": 0.0, "images_seen": 0, "levels": {}}
        if cfg.init:
            print(f"initialised from {cfg.init}", file=sys.stderr)
    lpips = None
    if cfg.lpips_weight > 0:
        lpips = lpips_loss(device)

    images, sampler = training_data(cfg, device, state["step"])
    val_images = image_files(Path(cfg.val_dir))[: cfg.val_images] if cfg.val_dir else []
    log = JsonLog(out / "log.jsonl")
    budget = Budget(cfg.max_minutes, state["elapsed"])

    def checkpoint() -> None:
        save_weights(out / "weights.safetensors", model)
        state.update(model=model.state_dict(), disc=disc.state_dict(), opt=opt.state_dict(),
                     disc_opt=disc_opt.state_dict(), elapsed=budget.elapsed,
                     torch_rng=torch.get_rng_state(), config=json.dumps(asdict(cfg)))
        save_checkpoint(ckpt_path, state)

    if state["step"] < cfg.steps:
        _main_phase(model, disc, opt, disc_opt, sampler, cfg, state, budget, log, checkpoint, device, lpips, val_images)
        checkpoint()
        if state["step"] < cfg.steps:
            return {"finished": False, "steps_done": state["step"], "phase": "main"}

    from lic.train.vq_levels import build_levels, encode_latents

    model.eval()
    all_images, _ = load_images(cfg.data, 16)
    stats = all_images[:: max(1, len(all_images) // cfg.stats_images)][: cfg.stats_images] if cfg.stats_images else all_images
    latents = encode_latents(model, stats, device)

    def fine_tune_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(x_hat.float(), x, cfg, lpips)["rec"]

    done = build_levels(model, sampler, latents, cfg.level_sizes(), state, cfg.level_steps, cfg.level_lr,
                        fine_tune_loss, cfg.amp, cfg.seed, checkpoint, budget.session_over)
    if not done:
        return {"finished": False, "steps_done": state["step"], "phase": "levels"}
    return _export_and_report(model, latents, cfg, state, budget, device, val_images, log)


def _main_phase(model, disc, opt, disc_opt, sampler, cfg, state, budget, log, checkpoint, device, lpips, val_images) -> None:
    bar = tqdm(total=cfg.steps, initial=state["step"], desc="vq", dynamic_ncols=True)
    usage = UsageMeter(cfg.codebook_size)
    meter = Throughput()
    model.train()
    disc.train()
    if state["step"] == 0:
        # k-means initialisation of the codebook on a large first batch, not on one small step.
        with torch.no_grad():
            batches = -(-cfg.codebook_size // (cfg.batch * (cfg.crop // 16) ** 2))
            z = torch.cat([model.encoder(sampler()) for _ in range(batches)])
            model.quantizer(z.float())
    while state["step"] < cfg.steps:
        step = state["step"]
        lr = apply_lr(cfg.lr, step, cfg.steps, cfg.decay_at, opt, disc_opt)
        use_gan = step >= cfg.disc_start
        x = sampler()
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, cfg.amp):
            result = model(x)
        x_hat = result["x_hat"].float()  # losses in float32: SSIM statistics need it
        rec = reconstruction_loss(x_hat, x, cfg, lpips)
        loss = rec["rec"] + result["commit"]
        if use_gan:
            real_aug, fake_aug = gan.augment_pair(x, x_hat)
            with autocast(device, cfg.amp):
                fake_logits, fake_feats = disc(fake_aug)
                _, real_feats = disc(real_aug)
            g_loss = gan.hinge_generator_loss(fake_logits.float())
            fm = gan.feature_matching_loss([f.float() for f in real_feats], [f.float() for f in fake_feats])
            weight = gan.adaptive_gan_weight(rec["rec"], g_loss, model.decoder.last_layer)
            loss = loss + cfg.disc_weight * weight * g_loss + cfg.feature_matching * fm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if use_gan:
            with autocast(device, cfg.amp):
                real_aug, fake_aug = gan.augment_pair(x, x_hat.detach())
                d_loss = gan.hinge_discriminator_loss(disc(real_aug)[0].float(), disc(fake_aug)[0].float())
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
        usage.add(result["indices"])
        state["step"] = step = step + 1
        state["images_seen"] += cfg.batch
        meter.add(cfg.batch)

        if step % 10 == 0 or step == cfg.steps:
            rate = meter.rate
            psnr = -10 * math.log10(max(F.mse_loss(x_hat.detach().float().clamp(0, 1), x).item(), 1e-10))
            bar.set_postfix(l1=f"{rec['l1'].item():.4f}", msssim=f"{1 - rec['msssim'].item():.4f}",
                            psnr=f"{psnr:.2f}", img_s=f"{rate:.1f}")
            bar.update(step - bar.n)
            if step % 100 == 0:
                record = {"step": step, "loss": loss.item(), "l1": rec["l1"].item(),
                          "ms_ssim": 1 - rec["msssim"].item(), "psnr": psnr, "commit": result["commit"].item(),
                          "images_per_s": rate, "lr": lr, "elapsed_s": budget.elapsed, **usage.report()}
                if use_gan:
                    record.update(g_loss=g_loss.item(), d_loss=d_loss.item(), fm=fm.item(), gan_weight=weight.item())
                log.write(record)
                bar.write(f"step {step}: codebook {record['codes_used']}/{cfg.codebook_size} used, "
                          f"perplexity {record['perplexity']:.0f}")
                meter.reset()
        if val_images and cfg.val_every and step % cfg.val_every == 0:
            v = validate_float(model, val_images, device)
            model.train()
            log.write({"step": step, "val": v})
            bar.write(f"step {step}: validation PSNR {v['psnr']:.2f} dB  MS-SSIM {v['ms_ssim']:.4f} "
                      f"(full codebook, {v['codes_used']} codes)")
        if step % cfg.save_every == 0:
            checkpoint()
        if budget.session_over():
            bar.write(f"--max-minutes reached at step {step}; resume with the same command")
            break
    bar.close()


@torch.no_grad()
def validate_float(model: VQAutoencoder, paths: list[Path], device: torch.device) -> dict:
    """Reconstruction through the float model with the full codebook (no bitstream)."""
    from lic.codecs.base import as_pixels, as_rgb, pad_to_multiple, to_input, to_pixels
    from lic.codecs.vq_model import nearest_code
    from lic.eval import metrics
    from lic.imageio import load_image

    model.eval()
    rows, used = [], set()
    for path in paths:
        source = load_image(path)
        x, _, _ = pad_to_multiple(to_input(as_pixels(source.rgb)), 16)
        indices = nearest_code(model.encoder(x.to(device)), model.codebook)
        used.update(indices.flatten().tolist())
        x_hat = model.decoder(model.codebook[indices].permute(0, 3, 1, 2))
        rgb = as_rgb(to_pixels(x_hat.float().cpu()[..., : source.height, : source.width]))
        rows.append({"psnr": metrics.psnr(source.rgb, rgb), "ms_ssim": metrics.ms_ssim(source.rgb, rgb)})
    out = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    out["codes_used"] = len(used)
    return out


def _export_and_report(model, latents, cfg, state, budget, device, val_images, log) -> dict:
    from lic.export.vq import export
    from lic.models import save_model_file
    from lic.train.vq_context import fit_context_models

    out = Path(cfg.out)
    codebooks = {level: state["levels"][level] for level in sorted(state["levels"])}
    contexts = fit_context_models(latents, codebooks, cfg.context_rank, cfg.context_epochs, cfg.seed, device)
    config = model_config(cfg)
    tensors = export(model, codebooks, contexts)
    model_file = save_model_file(out / "model.safetensors", tensors, config)
    summary = {
        "config": asdict(cfg), "model": config, "steps_done": state["step"], "images_seen": state["images_seen"],
        "wall_seconds": round(budget.elapsed, 1), "hardware": hardware(device),
        "images_per_second": round(state["images_seen"] / max(budget.elapsed, 1e-9), 2),
        "model_hash": model_file.hash.hex(), "model_bytes": model_file.path.stat().st_size, "finished": True,
    }
    if val_images:
        from lic.train.vq_report import measure

        summary["validation"] = measure(model_file.path, val_images)
    log.write({"step": state["step"], "final": True, "val": summary.get("validation")})
    (out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def model_config(cfg: VQTrainConfig) -> dict:
    """The JSON config of an exported model file (the top level is the file's own quality)."""
    sizes = cfg.level_sizes()
    return {"name": cfg.name, "family": "vq", "quality": max(sizes), "levels": {str(k): v for k, v in sizes.items()},
            **cfg.arch.to_config()}
