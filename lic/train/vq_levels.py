"""Rate levels of the VQ codec: reduced codebooks, as in Mao et al. (DCC 2024).

One trained model serves every rate: the full codebook is reduced to K codes by k-means
(one index then costs at most log2(K) bits) and the reduced codebook is fine-tuned briefly
with the encoder and the decoder frozen, so that the decoder's favourite inputs are kept.
Only the codebooks differ between levels, so a level costs K * code_dim numbers of storage.
"""

from __future__ import annotations

import sys
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lic.codecs.vq_model import VQAutoencoder, nearest_code
from lic.train.common import autocast


def spherical_kmeans(vectors: Tensor, weights: Tensor, k: int, iters: int = 30, seed: int = 0) -> Tensor:
    """k unit-length centroids of the unit `vectors` [N, D], each vector weighted (by how
    often the code is used). Seeded k-means++ start; a cluster that empties is re-seeded
    with the worst-served vector, so exactly k distinct centroids come back."""
    v = F.normalize(vectors.detach().double().cpu(), dim=1)
    w = weights.detach().double().cpu() + 1e-3  # unused codes still pull a little
    if k > v.shape[0]:
        raise ValueError(f"cannot reduce {v.shape[0]} codes to {k}")
    g = torch.Generator().manual_seed(seed)
    chosen = [int(torch.multinomial(w, 1, generator=g))]
    distance = (1 - v @ v[chosen[0]]).clamp(min=0)
    for _ in range(1, k):
        p = w * distance
        if p.sum() <= 0:
            raise ValueError(f"the codebook has fewer than {k} distinct codes")
        chosen.append(int(torch.multinomial(p, 1, generator=g)))
        distance = torch.minimum(distance, (1 - v @ v[chosen[-1]]).clamp(min=0))
    centroids = v[chosen].clone()
    for _ in range(iters):
        similarity = v @ centroids.T
        assign = similarity.argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, v * w[:, None])
        mass = torch.zeros(k, dtype=v.dtype).index_add_(0, assign, w)
        filled = mass > 0
        centroids[filled] = F.normalize(sums[filled], dim=1)
        empty = (~filled).nonzero().flatten()
        if empty.numel():
            worst = ((1 - similarity.max(dim=1).values) * w).argsort(descending=True)[: empty.numel()]
            centroids[empty] = v[worst]
    return centroids.float()


def finetune_codebook(
    model: VQAutoencoder,
    codebook: Tensor,
    sample: Callable[[], Tensor],
    steps: int,
    lr: float,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    amp: bool = False,
) -> Tensor:
    """Gradient steps on the codes alone: decode(reduced codes of encode(x)) should look like x."""
    device = next(model.parameters()).device
    model.requires_grad_(False)
    param = nn.Parameter(codebook.detach().clone().to(device))
    opt = torch.optim.Adam([param], lr=lr)
    for _ in range(steps):
        x = sample()
        with torch.no_grad():
            z = model.encoder(x)
        codes = F.normalize(param, dim=1)
        indices = nearest_code(z, codes.detach())
        with autocast(device, amp):
            x_hat = model.decoder(codes[indices].permute(0, 3, 1, 2))
        loss = loss_fn(x_hat, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.requires_grad_(True)
    return F.normalize(param.detach(), dim=1).cpu()


@torch.no_grad()
def encode_latents(model: VQAutoencoder, images: list[Tensor], device: torch.device) -> list[Tensor]:
    """Encoder outputs [code_dim, h, w] of whole uint8 images (cropped to multiples of 16):
    the index maps of every level derive from these without running the encoder again."""
    out = []
    for im in images:
        h, w = im.shape[1] // 16 * 16, im.shape[2] // 16 * 16
        x = im[:, :h, :w].to(device).float().div(255)[None]
        out.append(model.encoder(x)[0].float().cpu())
    return out


def code_usage(latents: list[Tensor], codebook: Tensor) -> Tensor:
    counts = torch.zeros(codebook.shape[0], dtype=torch.float64)
    for z in latents:
        counts += torch.bincount(nearest_code(z[None], codebook.cpu()).flatten(), minlength=codebook.shape[0]).double()
    return counts


def build_levels(model, sample, latents, sizes: dict[int, int], state: dict, steps: int, lr: float,
                 loss_fn, amp: bool, seed: int, checkpoint: Callable[[], None], session_over: Callable[[], bool]) -> bool:
    """Fills state["levels"] with {level: reduced codebook}; False if the time budget ran out
    first (finished levels are kept in the checkpoint)."""
    full = model.codebook.detach().cpu()
    usage = code_usage(latents, full)
    print(f"full codebook: {int((usage > 0).sum())} of {full.shape[0]} codes used on {len(latents)} images",
          file=sys.stderr)
    for level, k in sizes.items():
        if level in state["levels"]:
            continue
        if k == full.shape[0]:
            state["levels"][level] = full.clone()
        else:
            reduced = spherical_kmeans(full, usage, k, seed=seed + level)
            state["levels"][level] = finetune_codebook(model, reduced, sample, steps, lr, loss_fn, amp)
        print(f"level {level}: K={k} ready", file=sys.stderr)
        checkpoint()
        if session_over() and len(state["levels"]) < len(sizes):
            return False
    return True
