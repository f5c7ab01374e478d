"""Encoder effort: optimise one image's hyperprior latents for the model's own RD objective.

g_a gives one amortised guess of the latents; the guess is not the best y for *this* image
(the amortisation gap, Yang, Bamler & Mandt 2020, "Improving Inference for Neural Image
Compression"). Refinement searches y (and then z) for a lower `λ·255²·MSE + bpp`, the loss
the model was trained with, and leaves the decoder untouched: every refined file is an
ordinary .lic file of the same format.

How (per round):
1. z, and so the integer h_s's table indices and means, are held fixed. The codec codes
   round(y − μ) with the Gaussian table of each element's scale index, so the rate of a
   value v = y − μ is that of the table's Gaussian, evaluated on a stochastic rounding of v:
   stochastic Gumbel annealing (SGA), whose temperature falls from 0.5 towards hard
   rounding. Adam optimises v through the float32 g_s against the source pixels.
2. Every few steps the hard-rounded v is scored with the real integer tables' bit costs
   and the 8-bit pixels g_s gives; the best is kept, and the round stops early when the
   score has not improved for a while.
3. z is re-derived from the refined y (h_a, rounding, the exact integer h_s), which moves
   the means and scales; the next round starts from there.
Every candidate, effort 0's included, is finally scored on its real range-coded size and
its decoded pixels (float64 g_s, as the decoder runs it), and the best is written, so a
higher effort never writes a worse file by the model's own objective.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from lic.codecs.base import Encoded, to_input, to_pixels
from lic.codecs.hyperprior import HyperpriorCodec, scale_table
from lic.entropy import CdfTables

#: Adam steps per round of each effort level (0: g_a's latents, today's encoder).
EFFORT_ROUNDS: dict[int, tuple[int, ...]] = {0: (), 1: (60,), 2: (200,), 3: (400, 150)}
MAX_EFFORT = max(EFFORT_ROUNDS)
LEARNING_RATE = 0.02
TAU_START, TAU_END = 0.5, 0.02  # SGA temperature, annealed geometrically over a round
SCORE_EVERY = 10  # steps between hard-rounded scores
PATIENCE = 6  # scores without improvement before a round stops (after half its steps)
_MIN_PROB = 1e-9


@dataclass
class Step:
    """What the progress callback sees after each hard-rounded score."""

    step: int
    total: int
    bpp: float
    psnr: float


Progress = Callable[[Step], None]


def table_bits(tables: CdfTables, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Per table: bits of each directly coded value (padded with the overflow cost), the
    table's first value, and how many values it codes directly."""
    n = [tables.num_values(t) for t in range(len(tables))]
    bits = torch.zeros(len(tables), max(n) + 1, dtype=torch.float64)
    for t in range(len(tables)):
        freq = torch.from_numpy(tables.pmf(t))
        b = -torch.log2(freq / (1 << tables.precision))
        bits[t, : n[t] + 1] = b
        bits[t, n[t] + 1 :] = b[-1]
    offset = torch.from_numpy(tables.offset.astype("int64"))
    return bits.to(device), offset.to(device), torch.tensor(n, dtype=torch.int64, device=device)


def coded_bits(symbols: Tensor, index: Tensor, bits: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Bits of integer `symbols` coded with tables `index` (the range coder's cost to within
    its few bytes of overhead): a value out of its table's range costs the overflow bin plus
    its Elias-gamma escape."""
    table, offset, n = bits
    idx = index.long()
    sym = symbols.long() - offset[idx]
    count = n[idx]
    inside = (sym >= 0) & (sym < count)
    direct = table[idx, torch.where(inside, sym, count)]
    escaped = torch.where(sym < 0, -2 * sym - 1, 2 * (sym - count)).clamp(min=0)
    gamma = math.log2(24) + torch.floor(torch.log2(escaped.double() + 1))
    return (direct + torch.where(inside, 0.0, gamma)).sum()


def sga_round(v: Tensor, tau: float) -> Tensor:
    """A stochastic, differentiable rounding of v (Yang et al. 2020): floor or ceil with
    Gumbel-softmax weights from their atanh distances; it tends to hard rounding as tau -> 0."""
    lower = torch.floor(v).detach()
    r = (v - lower).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)], dim=-1) / tau
    weight = F.gumbel_softmax(logits, tau=tau, hard=False)[..., 1]
    return lower + weight


def gaussian_bits(v: Tensor, scales: Tensor) -> Tensor:
    """Bits of v under zero-mean Gaussians of `scales`, integrated over v ± 1/2 (the
    densities the integer y tables were made from)."""
    a = v.abs()
    upper = torch.special.ndtr((0.5 - a) / scales)
    lower = torch.special.ndtr((-0.5 - a) / scales)
    return -torch.log2((upper - lower).clamp(min=_MIN_PROB)).sum()


class Refiner:
    """Refines one image's analysis for a loaded `HyperpriorCodec`; see the module docstring."""

    def __init__(self, codec: HyperpriorCodec) -> None:
        if codec.lmbda is None:
            raise ValueError("the model file records no lambda, so its latents cannot be refined")
        self.codec = codec
        self.device = codec.device
        self.lmbda = codec.lmbda
        self.g_s = copy.deepcopy(codec.g_s).to(self.device, torch.float32).requires_grad_(False)
        self.y_bits = table_bits(codec.y_tables, self.device)
        self.z_bits = table_bits(codec.z_tables, torch.device("cpu"))
        self.scales = scale_table().to(self.device, torch.float32)

    def encode(self, x: Tensor, height: int, width: int, effort: int,
               progress: Progress | None = None) -> Encoded:
        """The streams of `refine`'s analysis."""
        return self.codec.streams(self.refine(x, height, width, effort, progress))

    def z_bits_of(self, a: dict[str, Tensor]) -> float:
        channels = torch.arange(a["z"].shape[1]).view(1, -1, 1, 1).expand_as(a["z"])
        return float(coded_bits(a["z"], channels, self.z_bits))

    def refine(self, x: Tensor, height: int, width: int, effort: int,
               progress: Progress | None = None) -> dict[str, Tensor]:
        """The best analysis found for 8-bit pixels x [1, 3, H, W] (H, W multiples of 64),
        scored on its top-left `height` x `width` pixels (the rest is padding)."""
        if effort not in EFFORT_ROUNDS:
            raise ValueError(f"effort must be 0..{MAX_EFFORT}, not {effort}")
        y = self.codec.latents(x)
        best = self.codec.analyse_latents(y)
        if effort == 0:
            return best
        target = to_input(x[..., :height, :width]).to(self.device)
        pixels8 = x[..., :height, :width]
        candidates = [best]
        rounds = EFFORT_ROUNDS[effort]
        done, total = 0, sum(rounds)
        a, start = best, y.double() - best["means"]
        for steps in rounds:
            symbols = self._round(a, start, target, steps, done, total, progress)
            done += steps
            candidates.append({**a, "y": symbols})  # same z: its digest stays valid
            y_hat = symbols + a["means"]
            a = self.codec.analyse_latents(y_hat.float())
            candidates.append(a)
            start = y_hat - a["means"]
        costs = [self.real_cost(c, pixels8) for c in candidates]
        return candidates[min(range(len(costs)), key=costs.__getitem__)]

    def real_cost(self, a: dict[str, Tensor], pixels8: Tensor) -> float:
        """λ·255²·MSE + bpp of an analysis from its range-coded bytes and decoded pixels."""
        encoded = self.codec.streams(a)
        nbytes = sum(len(s) for s in encoded.streams)
        h, w = pixels8.shape[-2:]
        decoded = self.codec.synthesise(a["y"] + a["means"])[..., :h, :w]
        mse = (decoded.double() - pixels8.double()).pow(2).mean().item()
        return self.lmbda * mse + 8 * nbytes / (h * w)

    def _round(self, a: dict[str, Tensor], start: Tensor, target: Tensor, steps: int, done: int,
               total: int, progress: Progress | None) -> Tensor:
        """One round of SGA from y − μ = `start`, z fixed; returns the best hard-rounded
        symbols found (float64, on the CPU)."""
        h, w = target.shape[-2:]
        pixels = h * w
        means = a["means"].to(self.device, torch.float32)
        index = a["index"].to(self.device)
        scales = self.scales[index.long()]
        z_bits = self.z_bits_of(a)
        v = start.to(self.device, torch.float32).requires_grad_(True)
        optimizer = torch.optim.Adam([v], lr=LEARNING_RATE)
        best_v, best_score, since_best = a["y"].to(self.device, torch.float32), math.inf, 0
        for step in range(steps):
            tau = TAU_START * (TAU_END / TAU_START) ** (step / max(steps - 1, 1))
            soft = sga_round(v, tau)
            x_hat = self.g_s(soft + means)[..., :h, :w]
            mse = (x_hat - target).pow(2).mean()
            loss = self.lmbda * 255**2 * mse + gaussian_bits(soft, scales) / pixels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if (step + 1) % SCORE_EVERY and step + 1 != steps:
                continue
            with torch.no_grad():
                hard = torch.round(v)
                decoded = to_pixels(self.g_s(hard + means)[..., :h, :w]).float()
                mse8 = (decoded - target * 255).pow(2).mean().item()
                bpp = (float(coded_bits(hard, index, self.y_bits)) + z_bits) / pixels
                score = self.lmbda * mse8 + bpp
            if score < best_score:
                best_v, best_score, since_best = hard.clone(), score, 0
            else:
                since_best += 1
            if progress is not None:
                psnr = 10 * math.log10(255**2 / max(mse8, 1e-10))
                progress(Step(done + step + 1, total, bpp, psnr))
            if since_best >= PATIENCE and step >= steps // 2:
                break
        return best_v.to("cpu", torch.float64)
