"""How much each layer of a hyperprior model suffers when its weights lose bits: two measures.

1. **Measured RD change** (`measured_rd_change`): the model's rate-distortion loss
   `lambda * 255**2 * MSE + bpp` on fixed calibration crops, evaluated as the codec runs
   (rounded latents), with only one layer quantized to b bits, minus the loss with none.
   This is what the bit allocation optimises: it is the quantity the user pays.
2. **Hessian trace** (`hessian_traces`, HAWQ-V2, Dong et al. 2020): per layer, the trace of
   the loss Hessian estimated with Hutchinson's method (E[v^T H v] over Rademacher v), times
   the squared quantization error per weight: `Tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2`. A
   second-order prediction of the same loss change, cheaper per bit width and noise-free in
   the rounding, so agreement between the two rankings is a check on both.

Both run on the CPU in float32 on crops of the calibration set (training photos, never the
test images).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from lic.codecs.hyperprior_net import MeanScaleHyperprior, rd_loss
from lic.codecs.latent.factorized import Z_STEP
from lic.codecs.latent.gaussian import parameters_from, scale_table
from lic.entropy.integer_net import IntegerNet
from lic.quantization.gptq import quantize_layer

#: The network each layer belongs to, in the order the forward pass meets them.
_STAGES = ("g_a", "h_a", "h_s", "g_s")


def quantized_copy(module: nn.Module, bits: int, moments: Tensor | None = None) -> Tensor:
    """The layer's weight after a round trip through `bits`-bit storage (GPTQ rounding
    when its input moments are given, nearest rounding otherwise)."""
    return quantize_layer(module, bits, moments).dequantize()


@contextlib.contextmanager
def replaced_weights(model: nn.Module, weights: dict[str, Tensor]):
    """Runs the block with these layers' weights swapped in; the originals come back after."""
    originals = {layer: model.get_submodule(layer).weight.data.clone() for layer in weights}
    try:
        for layer, weight in weights.items():
            model.get_submodule(layer).weight.data.copy_(weight)
        yield model
    finally:
        for layer, weight in originals.items():
            model.get_submodule(layer).weight.data.copy_(weight)


@dataclass
class _Cache:
    y: Tensor
    z_hat: Tensor
    z_bits: Tensor
    means: Tensor
    y_hat: Tensor
    y_bits: Tensor


class RDProbe:
    """The eval-mode RD loss of `model` on `x`, recomputed from the stage a change touches."""

    def __init__(self, model: MeanScaleHyperprior, x: Tensor, lmbda: float) -> None:
        self.model, self.x, self.lmbda = model.eval(), x, lmbda
        self.pixels = x.shape[0] * x.shape[2] * x.shape[3]
        with torch.no_grad():
            self.cache = self._run("g_a", None)
        self.baseline = self._metrics(self.cache)["loss"]

    def _run(self, stage: str, cache: _Cache | None, h_s: IntegerNet | None = None) -> _Cache:
        m = self.model
        start = _STAGES.index(stage)
        y = m.g_a(self.x) if start == 0 else cache.y
        if start <= 1:
            z_hat, z_lik = m.entropy_bottleneck(m.h_a(y))
            z_bits = -torch.log2(z_lik).sum()
        else:
            z_hat, z_bits = cache.z_hat, cache.z_bits
        if start <= 2:
            scales, means = m.entropy_parameters(z_hat) if h_s is None else self._integer_parameters(h_s, z_hat)
            _, y_lik = m.gaussian_conditional(y, scales, means)
            y_bits = -torch.log2(y_lik).sum()
            y_hat = torch.round(y - means) + means
        else:
            means, y_hat, y_bits = cache.means, cache.y_hat, cache.y_bits
        return _Cache(y, z_hat, z_bits, means, y_hat, y_bits)

    def _integer_parameters(self, h_s: IntegerNet, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Scales and means as the codec derives them: table scales from integer indices."""
        index, means = parameters_from(h_s(torch.round(z_hat.double() / Z_STEP)), self.model.M)
        return scale_table()[index.long()].to(z_hat.dtype), means.to(z_hat.dtype)

    def _metrics(self, cache: _Cache) -> dict[str, float]:
        with torch.no_grad():
            mse = float(torch.mean((self.model.g_s(cache.y_hat).clamp(0, 1) - self.x) ** 2))
        bpp = float(cache.y_bits + cache.z_bits) / self.pixels
        return {"bpp": bpp, "psnr": -10 * math.log10(max(mse, 1e-12)), "loss": self.lmbda * 255**2 * mse + bpp}

    def summary(self) -> dict[str, float]:
        """bpp, PSNR and loss of the model as it is now."""
        return self._metrics(self.cache)

    @torch.no_grad()
    def loss_with(self, layer: str, weight: Tensor) -> float:
        with replaced_weights(self.model, {layer: weight}):
            return self._metrics(self._run(layer.split(".")[0], self.cache))["loss"]

    @torch.no_grad()
    def summary_with_h_s(self, h_s: IntegerNet) -> dict[str, float]:
        """bpp, PSNR and loss with entropy parameters from this integer h_s (as the codec runs)."""
        return self._metrics(self._run("h_s", self.cache, h_s))


def measured_rd_change(
    model: MeanScaleHyperprior, x: Tensor, lmbda: float, layers: tuple[str, ...], bits: tuple[int, ...],
    moments: dict[str, Tensor] | None = None, integer_h_s: Callable[[dict[str, int]], IntegerNet] | None = None,
) -> dict[str, dict[int, float]]:
    """RD-loss change (bits per pixel units, as the loss) of quantizing one layer at a time
    with the quantizer the export uses (`moments`: GPTQ's input statistics per layer).

    h_s layers, when `integer_h_s` (widths -> the exported integer h_s) is given, are measured
    through the integer network the codec runs, against that network at 8 bits: its rounding
    of activations and table indices is where narrow h_s weights cost rate."""
    moments = moments or {}
    probe = RDProbe(model, x, lmbda)
    h_s_baseline = probe.summary_with_h_s(integer_h_s({}))["loss"] if integer_h_s is not None else 0.0

    def change(layer: str, b: int) -> float:
        if integer_h_s is not None and layer.startswith("h_s"):
            return probe.summary_with_h_s(integer_h_s({layer: b}))["loss"] - h_s_baseline
        return probe.loss_with(layer, quantized_copy(model.get_submodule(layer), b, moments.get(layer))) - probe.baseline

    return {layer: {b: change(layer, b) for b in bits} for layer in layers}


def hessian_traces(
    model: MeanScaleHyperprior, x: Tensor, lmbda: float, layers: tuple[str, ...], samples: int, seed: int = 0,
) -> dict[str, float]:
    """Hutchinson estimate of Tr(H_l) of the training loss for each layer's weight.

    One Hessian-vector product per sample serves every layer: with v Rademacher over all
    layers jointly, E[v_l . (H v)_l] = Tr(H_ll) because the cross terms have mean zero.
    The loss is the training one (additive uniform noise for the rate, straight-through
    rounding for the distortion), since rounding has no second derivative; its noise is
    drawn once, so every sample differentiates the same function.
    """

    generator = torch.Generator().manual_seed(seed)
    weights = [model.get_submodule(layer).weight for layer in layers]
    model.train()
    torch.manual_seed(seed)
    try:
        loss = rd_loss(model(x), x, lmbda, "mse")["loss"]
        grads = torch.autograd.grad(loss, weights, create_graph=True)
        traces = [0.0] * len(layers)
        for _ in range(samples):
            vs = [torch.randint(0, 2, w.shape, generator=generator).to(w.dtype) * 2 - 1 for w in weights]
            hvs = torch.autograd.grad(grads, weights, grad_outputs=vs, retain_graph=True)
            for i, (v, hv) in enumerate(zip(vs, hvs)):
                traces[i] += float((v * hv).sum()) / samples
    finally:
        model.eval()
    return dict(zip(layers, traces))


def hawq_sensitivity(
    model: MeanScaleHyperprior, traces: dict[str, float], bits: tuple[int, ...],
) -> dict[str, dict[int, float]]:
    """HAWQ-V2's predicted loss change: mean Hessian trace times the squared error of
    nearest rounding (the paper's quantizer)."""
    out = {}
    for layer, trace in traces.items():
        module = model.get_submodule(layer)
        w = module.weight.detach()
        out[layer] = {
            b: trace / w.numel() * float(((quantized_copy(module, b) - w) ** 2).sum()) for b in bits
        }
    return out
