"""Fitting the VQ codec's entropy model to the index maps of the training images.

Per level: a static table from the index counts (pass 0), and the log-bilinear context
model of `lic.entropy.index_context` (passes 1 and 2), trained in float by cross-entropy and
then converted to the integers the codec runs: int8 embeddings, int32 biases, and the table
that maps a score gap to a frequency. Nothing float is left for the decoder to evaluate.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lic.codecs.vq_model import nearest_code
from lic.entropy.index_context import FREQ_BITS, PASS_DIRECTIONS, IndexContextModel, neighbours, pass_masks, static_table

_SCORE_STEP = 1 / 64  # nats per step of the frequency table: far finer than coding needs


def pass_samples(index_maps: list[np.ndarray], pass_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets [N], neighbour indices [N, 4], -1 where absent) of one pass over all maps."""
    targets, context = [], []
    for indices in index_maps:
        positions = np.argwhere(pass_masks(*indices.shape)[pass_id])
        targets.append(indices[positions[:, 0], positions[:, 1]])
        context.append(np.stack([neighbours(indices, positions, d) for d in PASS_DIRECTIONS[pass_id]], axis=1))
    return np.concatenate(targets), np.concatenate(context)


class _FloatContextModel(torch.nn.Module):
    def __init__(self, k: int, rank: int, prior: Tensor) -> None:
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(8, k, rank) * 0.05)
        self.out = torch.nn.Parameter(torch.randn(2, k, rank) * 0.05)
        self.bias = torch.nn.Parameter(prior.log().expand(2, -1).clone())
        self.repeat = torch.nn.Parameter(torch.zeros(8, k))

    def logits(self, context: Tensor, pass_id: int) -> Tensor:
        directions = torch.tensor(PASS_DIRECTIONS[pass_id], device=context.device)
        known = context >= 0
        n = context.clamp(min=0)
        u = (self.embed[directions, n] * known.unsqueeze(-1)).sum(dim=1)
        logits = u @ self.out[pass_id - 1].T + self.bias[pass_id - 1]
        return logits.scatter_add(1, n, self.repeat[directions, n] * known)


def fit_context_model(index_maps: list[np.ndarray], k: int, rank: int = 8, epochs: int = 8, seed: int = 0,
                      device: torch.device = torch.device("cpu"), batch: int = 4096, min_steps: int = 0) -> IndexContextModel:
    """The integer context model of one level from its index maps (any sizes). Training
    runs `epochs` passes over the data, but at least `min_steps` steps (0 epochs: the
    static prior alone)."""
    counts = np.bincount(np.concatenate([m.ravel() for m in index_maps]), minlength=k).astype(np.float64)
    prior = torch.from_numpy((counts + 0.5) / (counts.sum() + 0.5 * k)).float()
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _FloatContextModel(k, rank, prior).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    samples = {p: tuple(torch.from_numpy(a).to(device) for a in pass_samples(index_maps, p)) for p in (1, 2)}
    largest = max(t.numel() for t, _ in samples.values())
    steps = max(min_steps, epochs * math.ceil(largest / batch)) if epochs else 0
    for _ in range(steps):
        loss = 0.0
        for p, (targets, context) in samples.items():
            if targets.numel():
                pick = torch.randint(targets.numel(), (min(batch, targets.numel()),), generator=generator).to(device)
                loss = loss + F.cross_entropy(model.logits(context[pick], p), targets[pick])
        if not torch.is_tensor(loss):
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return _to_integers(model.cpu(), static_table(counts))


def _to_integers(model: _FloatContextModel, static) -> IndexContextModel:
    """int8 embeddings on one grid per tensor family; biases, repeat bonuses and the
    frequency table in the resulting score unit (nats per step = step_embed * step_out)."""
    with torch.no_grad():
        step_embed = float(model.embed.abs().max()) / 127 or 1.0
        step_out = float(model.out.abs().max()) / 127 or 1.0
        embed = torch.round(model.embed / step_embed).clamp(-127, 127).to(torch.int8)
        out = torch.round(model.out / step_out).clamp(-127, 127).to(torch.int8)
        unit = step_embed * step_out
        bias = model.bias - model.bias.max(dim=1, keepdim=True).values
        bias = torch.round(bias / unit).clamp(-(2**30), 0).to(torch.int32)
        repeat = torch.round(model.repeat / unit).clamp(-(2**30), 2**30).to(torch.int32)
    shift = max(0, math.floor(math.log2(_SCORE_STEP / unit)))
    step = unit * 2**shift
    length = math.ceil(FREQ_BITS * math.log(2) / step) + 1
    exp_table = np.maximum(1, np.round(2.0**FREQ_BITS * np.exp(-step * np.arange(length)))).astype(np.int64)
    return IndexContextModel(static, embed.numpy(), out.numpy(), bias.numpy(), repeat.numpy(), exp_table, shift)


def index_maps(latents: list[Tensor], codebook: Tensor) -> list[np.ndarray]:
    return [nearest_code(z[None], codebook.float())[0].numpy() for z in latents]


def fit_context_models(latents: list[Tensor], codebooks: dict[int, Tensor], rank: int, epochs: int, seed: int,
                       device: torch.device) -> dict[int, IndexContextModel]:
    """One integer context model per level, from the training images' index maps."""
    out = {}
    for level, codebook in codebooks.items():
        maps = index_maps(latents, codebook.half())  # the codebook as the model file stores it
        out[level] = fit_context_model(maps, codebook.shape[0], rank, epochs, seed + level, device)
        print(f"level {level}: context model fitted on {sum(m.size for m in maps)} indices", file=sys.stderr)
    return out
