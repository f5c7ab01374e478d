"""Encoder effort: optimise one image's hyperprior latents for the model's own RD objective.

g_a gives one amortised guess of the latents; the guess is not the best y for *this* image
(the amortisation gap, Yang, Bamler & Mandt 2020, "Improving Inference for Neural Image
Compression"). Refinement searches y (and then z) for a lower `λ·255²·MSE + bpp`, the loss
the model was trained with, and leaves the decoder untouched: every refined file is an
ordinary .lic file of the same format.

How: each effort level is a list of rounds of Adam steps (`EFFORT_ROUNDS`).
- A "y" round holds z, and so the integer h_s's table indices and means, fixed. The codec
  codes round(y − μ) with the Gaussian table of each element's scale index, so the rate of
  v = y − μ is that table's Gaussian (integrated over v ± 1/2) evaluated on a stochastic
  rounding of v: stochastic Gumbel annealing (SGA), whose temperature falls from 0.5 towards
  hard rounding over the round. The distortion is through a float32 copy of g_s.
- A "yz" round optimises y and z together: z is SGA-rounded too, its rate read from the z
  tables (costs interpolated between integers), and the means and scales come from a float
  copy of the integer h_s (`soft_h_s`, the same weights without the roundings), so z's
  effect on y's rate is differentiable. Its result is re-derived through the exact h_s.
- Every few steps the hard-rounded latents are scored with the integer tables' bit costs
  and the 8-bit pixels g_s gives; the best is kept, and a round stops early when the score
  has not improved for a while (after half its steps).
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
from lic.codecs.hyperprior import HyperpriorCodec
from lic.codecs.latent.factorized import Z_STEP
from lic.codecs.latent.gaussian import MEAN_STEP, SCALE_LEVELS, SCALE_LOG_STEP, SCALE_MIN, scale_table
from lic.entropy import CdfTables
from lic.entropy.integer_net import IntegerLayer, IntegerNet

#: The rounds of each effort level (0: g_a's latents, today's encoder): which latents a round
#: optimises ("yz" both, through the float copy of h_s; "y" with z, so the tables, fixed)
#: and its Adam steps.
EFFORT_ROUNDS: dict[int, tuple[tuple[str, int], ...]] = {
    0: (), 1: (("y", 60),), 2: (("yz", 150), ("y", 50)), 3: (("yz", 350), ("y", 150)),
}
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
    its few bytes of overhead)."""
    return element_bits(symbols, index, bits).sum()


def element_bits(symbols: Tensor, index: Tensor, bits: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Bits of each integer symbol; a value out of its table's range costs the overflow bin
    plus its Elias-gamma escape."""
    table, offset, n = bits
    idx = index.long()
    sym = symbols.long() - offset[idx]
    count = n[idx]
    inside = (sym >= 0) & (sym < count)
    direct = table[idx, torch.where(inside, sym, count)]
    escaped = torch.where(sym < 0, -2 * sym - 1, 2 * (sym - count)).clamp(min=0)
    gamma = math.log2(24) + torch.floor(torch.log2(escaped.double() + 1))
    return direct + torch.where(inside, 0.0, gamma)


def sga_round(v: Tensor, tau: float) -> Tensor:
    """A stochastic, differentiable rounding of v (Yang et al. 2020): floor or ceil with
    Gumbel-softmax weights from their atanh distances; it tends to hard rounding as tau -> 0."""
    lower = torch.floor(v).detach()
    r = (v - lower).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)], dim=-1) / tau
    weight = F.gumbel_softmax(logits, tau=tau, hard=False)[..., 1]
    return lower + weight


def soft_table_bits(soft: Tensor, index: Tensor, bits: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Bits of a soft-rounded value: the table's costs at its floor and ceiling, interpolated
    (the expected cost of the stochastic rounding SGA draws)."""
    lower = torch.floor(soft).detach()
    below, above = element_bits(lower, index, bits), element_bits(lower + 1, index, bits)
    return (below + (soft - lower) * (above - below).to(soft.dtype)).sum()


def soft_h_s(layers: list[tuple[Tensor, Tensor, Tensor, IntegerLayer]], z16: Tensor) -> Tensor:
    """The integer h_s without its roundings: a differentiable float copy that moves with it.

    layers: per integer layer, its weight, bias and scale (multiplier / 2**shift) as float
    tensors on z16's device, and the layer for its geometry and clip."""
    x = z16
    for weight, bias, scale, layer in layers:
        if layer.transposed:
            x = F.conv_transpose2d(x, weight, bias, stride=layer.stride, padding=layer.padding,
                                   output_padding=layer.output_padding)
        else:
            x = F.conv2d(x, weight, bias, stride=layer.stride, padding=layer.padding)
        x = x * scale
        if layer.clip is not None:
            x = x.clamp(0, layer.clip)
    return x


def float_layers(net: IntegerNet, device: torch.device) -> list[tuple[Tensor, Tensor, Tensor, IntegerLayer]]:
    """The tensors `soft_h_s` runs `net`'s layers with."""
    out = []
    for layer in net.layers:
        multiplier = layer.multiplier.double() if layer.multiplier is not None else torch.ones(layer.shift.shape)
        scale = multiplier * torch.exp2(-layer.shift.double())
        out.append((layer.weight.to(device, torch.float32), layer.bias.to(device, torch.float32),
                    scale.to(device, torch.float32).view(1, -1, 1, 1), layer))
    return out


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
        self.h_s = float_layers(codec.latent.h_s, self.device)
        self.y_bits = table_bits(codec.latent.y.tables, self.device)
        self.z_bits = table_bits(codec.latent.z.tables, self.device)
        self.z_medians16 = codec.latent.z.medians16.to(self.device, torch.float32)
        self.scales = scale_table().to(self.device, torch.float32)

    def encode(self, x: Tensor, height: int, width: int, effort: int,
               progress: Progress | None = None) -> Encoded:
        """The streams of `refine`'s analysis."""
        return self.codec.latent.streams(self.refine(x, height, width, effort, progress))

    def z_bits_of(self, a: dict[str, Tensor]) -> float:
        return float(coded_bits(a["z"].to(self.device), self._z_channels(a["z"]), self.z_bits))

    def _z_channels(self, z: Tensor) -> Tensor:
        return torch.arange(z.shape[1], device=self.device).view(1, -1, 1, 1).expand(z.shape)

    @torch.no_grad()
    def refine(self, x: Tensor, height: int, width: int, effort: int,
               progress: Progress | None = None) -> dict[str, Tensor]:
        """The best analysis found for 8-bit pixels x [1, 3, H, W] (H, W multiples of 64),
        scored on its top-left `height` x `width` pixels (the rest is padding)."""
        if effort not in EFFORT_ROUNDS:
            raise ValueError(f"effort must be 0..{MAX_EFFORT}, not {effort}")
        y = self.codec.latents(x)
        best = self.codec.latent.analyse(y)
        if effort == 0:
            return best
        target = to_input(x[..., :height, :width]).to(self.device)
        z = self.codec.latent.h_a(y.to(self.device)).float() - self.z_medians16 * Z_STEP
        y = y.to(self.device, torch.float32)
        candidates, a = [best], best
        done, total = 0, sum(steps for _, steps in EFFORT_ROUNDS[effort])
        for kind, steps in EFFORT_ROUNDS[effort]:
            with torch.enable_grad():
                if kind == "yz":
                    y, z_symbols = self._joint_round(y, z, target, steps, done, total, progress)
                    a = self.codec.latent.analyse_symbols(z_symbols.to("cpu", torch.float64), y)
                    z = z_symbols.float()
                else:
                    symbols = self._y_round(a, y, target, steps, done, total, progress)
                    a = {**a, "y": symbols}  # same z: its digest stays valid
                    y = (symbols + a["means"]).to(self.device, torch.float32)
            candidates.append(a)
            done += steps
        pixels8 = x[..., :height, :width]
        costs = [self.real_cost(c, pixels8) for c in candidates]
        return candidates[min(range(len(costs)), key=costs.__getitem__)]

    def real_cost(self, a: dict[str, Tensor], pixels8: Tensor) -> float:
        """λ·255²·MSE + bpp of an analysis from its range-coded bytes and decoded pixels."""
        encoded = self.codec.latent.streams(a)
        nbytes = sum(len(s) for s in encoded.streams)
        h, w = pixels8.shape[-2:]
        decoded = self.codec.synthesise(self.codec.latent.latents_hat(a))[..., :h, :w]
        mse = (decoded.double() - pixels8.double()).pow(2).mean().item()
        return self.lmbda * mse + 8 * nbytes / (h * w)

    def _loss(self, y_hat: Tensor, target: Tensor, bits: Tensor) -> Tensor:
        h, w = target.shape[-2:]
        mse = (self.g_s(y_hat)[..., :h, :w] - target).pow(2).mean()
        return self.lmbda * 255**2 * mse + bits / (h * w)

    def _score(self, y_hat: Tensor, target: Tensor, bits: float) -> tuple[float, float, float]:
        """(λ·255²·MSE + bpp, bpp, MSE) of hard latents, from 8-bit pixels and table bits."""
        h, w = target.shape[-2:]
        decoded = to_pixels(self.g_s(y_hat)[..., :h, :w]).float()
        mse = (decoded - target * 255).pow(2).mean().item()
        bpp = bits / (h * w)
        return self.lmbda * mse + bpp, bpp, mse

    def _y_round(self, a: dict[str, Tensor], y: Tensor, target: Tensor, steps: int, done: int,
                 total: int, progress: Progress | None) -> Tensor:
        """SGA on y − μ with z (so μ and the tables) fixed, from y; returns the best
        hard-rounded symbols found (float64, on the CPU)."""
        means = a["means"].to(self.device, torch.float32)
        index = a["index"].to(self.device)
        scales = self.scales[index.long()]
        z_bits = self.z_bits_of(a)
        v = (y - means).detach().requires_grad_(True)
        optimizer = torch.optim.Adam([v], lr=LEARNING_RATE)
        best, tracker = torch.round(v.detach()), _Tracker(steps, done, total, progress)
        for step in range(steps):
            soft = sga_round(v, _tau(step, steps))
            loss = self._loss(soft + means, target, gaussian_bits(soft, scales))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if not tracker.due(step):
                continue
            with torch.no_grad():
                hard = torch.round(v)
                score = self._score(hard + means, target, float(coded_bits(hard, index, self.y_bits)) + z_bits)
            if tracker.better(step, score):
                best = hard.clone()
            if tracker.stop(step):
                break
        return best.to("cpu", torch.float64)

    def _joint_round(self, y: Tensor, z: Tensor, target: Tensor, steps: int, done: int, total: int,
                     progress: Progress | None) -> tuple[Tensor, Tensor]:
        """SGA on z − median and on y − μ(z) together, μ and the scales from the float copy
        of h_s; returns the best (y, z symbols) found."""
        y = y.detach().clone().requires_grad_(True)
        z = z.detach().clone().requires_grad_(True)
        channels = self._z_channels(z)
        M = self.codec.M
        optimizer = torch.optim.Adam([y, z], lr=LEARNING_RATE)
        best, tracker = (y.detach().clone(), torch.round(z.detach())), _Tracker(steps, done, total, progress)
        for step in range(steps):
            tau = _tau(step, steps)
            z_soft = sga_round(z, tau)
            out = soft_h_s(self.h_s, z_soft / Z_STEP + self.z_medians16)
            index, means = out[:, :M].clamp(0, SCALE_LEVELS - 1), out[:, M:] * MEAN_STEP
            scales = SCALE_MIN * torch.exp(SCALE_LOG_STEP * index)
            v = sga_round(y - means, tau)
            bits = gaussian_bits(v, scales) + soft_table_bits(z_soft, channels, self.z_bits)
            loss = self._loss(v + means, target, bits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if not tracker.due(step):
                continue
            with torch.no_grad():  # scored with the float h_s rounded (the exact one runs on
                z_hard = torch.round(z)  # the CPU, too slow to run at every score)
                out = soft_h_s(self.h_s, z_hard / Z_STEP + self.z_medians16)
                index = torch.round(out[:, :M]).clamp(0, SCALE_LEVELS - 1)
                means = torch.round(out[:, M:]) * MEAN_STEP
                symbols = torch.round(y - means)
                bits = coded_bits(symbols, index, self.y_bits) + coded_bits(z_hard, channels, self.z_bits)
                score = self._score(symbols + means, target, float(bits))
            if tracker.better(step, score):
                best = (y.detach().clone(), z_hard)
            if tracker.stop(step):
                break
        return best


def _tau(step: int, steps: int) -> float:
    """SGA's temperature: from TAU_START down to TAU_END, geometrically over a round."""
    return TAU_START * (TAU_END / TAU_START) ** (step / max(steps - 1, 1))


class _Tracker:
    """When a round scores its hard-rounded latents, whether a score is its best so far, when
    it stops early, and the progress reports."""

    def __init__(self, steps: int, done: int, total: int, progress: Progress | None) -> None:
        self.steps, self.done, self.total, self.progress = steps, done, total, progress
        self.best, self.since_best = math.inf, 0

    def due(self, step: int) -> bool:
        return (step + 1) % SCORE_EVERY == 0 or step + 1 == self.steps

    def better(self, step: int, score: tuple[float, float, float]) -> bool:
        cost, bpp, mse = score
        if self.progress is not None:
            self.progress(Step(self.done + step + 1, self.total, bpp, 10 * math.log10(255**2 / max(mse, 1e-10))))
        if cost < self.best:
            self.best, self.since_best = cost, 0
            return True
        self.since_best += 1
        return False

    def stop(self, step: int) -> bool:
        return self.since_best >= PATIENCE and step >= self.steps // 2
