"""Mixed-precision export of a trained hyperprior: measure, allocate, export, report.

`plan` measures both sensitivities of every layer, chooses bit widths (from a size budget,
or as given), and checks the choice jointly on the calibration crops; `export` (in
`lic.export.hyperprior`) then writes the model file with those widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from lic.codecs.hyperprior_net import QUANTIZABLE_LAYERS, MeanScaleHyperprior
from lic.entropy.integer_net import IntegerNet
from lic.export.hyperprior import calibration_z_hat, export, integer_h_s
from lic.quantization.allocate import allocate_bits, monotone_costs
from lic.quantization.gptq import output_channel_dim
from lic.quantization.sensitivity import (
    RDProbe, hawq_sensitivity, hessian_traces, measured_rd_change, quantized_copy, replaced_weights,
)

#: Widths the allocation chooses from.
MENU = (8, 7, 6, 5, 4)


def weight_bytes(model: MeanScaleHyperprior, layer: str, bits: int) -> int:
    """Stored bytes of a layer's weight: packed integers, plus float16 scales outside h_s."""
    module = model.get_submodule(layer)
    packed = -(-module.weight.numel() * bits // 8)
    scales = 0 if layer.startswith("h_s") else 2 * module.weight.shape[output_channel_dim(module)]
    return packed + scales


@dataclass
class Plan:
    """Everything `lic quantize` decides and measures, for its table and the model card."""

    bits: dict[str, int]
    measured: dict[str, dict[int, float]] = field(default_factory=dict)  # RD-loss change per width
    hawq: dict[str, dict[int, float]] = field(default_factory=dict)  # predicted change per width
    traces: dict[str, float] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    joint: dict[str, float] = field(default_factory=dict)  # float vs quantized on calibration crops

    def rank_agreement(self, bits: int = 4) -> float:
        """Spearman correlation of the two sensitivity rankings at `bits` (1: same order)."""
        layers = [l for l in self.measured if l in self.hawq]
        if len(layers) < 3:
            return math.nan
        a = torch.tensor([self.measured[l][bits] for l in layers]).argsort().argsort().double()
        b = torch.tensor([self.hawq[l][bits] for l in layers]).argsort().argsort().double()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    def to_json(self) -> dict:
        return {"bits": self.bits, "measured_rd_change": self.measured, "hawq_predicted_change": self.hawq,
                "hessian_trace": self.traces, "params": self.params, "weight_bytes": self.bytes,
                "joint_on_calibration": self.joint, "spearman_at_4_bits": self.rank_agreement()}


def fixed_bytes(model: MeanScaleHyperprior, calibration: Tensor) -> int:
    """Bytes of a model file besides the quantizable weights (GDN, biases, tables, header;
    4 kB allowed for the config, which is far more than it takes)."""
    from safetensors.torch import save

    all8 = dict.fromkeys(QUANTIZABLE_LAYERS, 8)
    tensors = export(model, calibration, all8)
    total = len(save({k: v.contiguous() for k, v in tensors.items()}, metadata={"lic": "x" * 4000}))
    return total - sum(weight_bytes(model, l, 8) for l in QUANTIZABLE_LAYERS)


def plan(
    model: MeanScaleHyperprior,
    lmbda: float,
    crops: Tensor,
    hessian_crops: Tensor,
    moments: dict[str, Tensor],
    h_s_calibration: Tensor,
    budget_bytes: int | None = None,
    bits: dict[str, int] | None = None,
    hessian_samples: int = 8,
    fixed: dict[str, int] | None = None,
    log=lambda line: None,
) -> Plan:
    """Measures sensitivities and picks widths: under `budget_bytes` (whole file), or `bits`.
    Layers in `fixed` keep the given widths and are neither measured nor allocated.

    crops: where the RD loss is measured; hessian_crops: where Hessian traces are estimated;
    moments: GPTQ statistics (`transform_moments`), from crops other than `crops`;
    h_s_calibration: the images the export calibrates the integer h_s on (h_s layers are
    measured through that integer network).
    """
    model = model.eval()
    z_hat = calibration_z_hat(model, h_s_calibration)  # once: every h_s width measured is calibrated on it
    build_h_s = lambda widths: integer_h_s(model, z_hat, widths)  # noqa: E731
    params = {l: model.get_submodule(l).weight.numel() for l in QUANTIZABLE_LAYERS}
    result = Plan(bits={}, params=params)
    if bits is None:
        fixed = fixed or {}
        free = tuple(l for l in QUANTIZABLE_LAYERS if l not in fixed)
        sizes = {l: {b: weight_bytes(model, l, b) for b in MENU} for l in free}
        weights_budget = budget_bytes - fixed_bytes(model, crops) - sum(weight_bytes(model, l, b) for l, b in fixed.items())
        allocate_bits(dict.fromkeys(sizes, dict.fromkeys(MENU, 0.0)), sizes, weights_budget)  # fails fast
        log(f"measuring the RD-loss change of each layer at {', '.join(map(str, MENU[1:]))} bits "
            f"on {crops.shape[0]} crops of {crops.shape[-1]} px")
        result.measured = measured_rd_change(model, crops, lmbda, free, MENU[1:], moments, build_h_s)
        for l in free:
            result.measured[l][8] = 0.0
        log(f"estimating Hessian traces (Hutchinson, {hessian_samples} samples)")
        result.traces = hessian_traces(model, hessian_crops, lmbda, free, hessian_samples)
        result.hawq = hawq_sensitivity(model, result.traces, MENU)
        bits = {**allocate_bits(monotone_costs(result.measured), sizes, weights_budget), **fixed}
    result.bits = {l: bits.get(l, 8) for l in QUANTIZABLE_LAYERS}
    result.bytes = {l: weight_bytes(model, l, result.bits[l]) for l in QUANTIZABLE_LAYERS}
    result.joint = joint_change(model, crops, lmbda, result.bits, moments, build_h_s)
    return result


@torch.no_grad()
def joint_change(
    model: MeanScaleHyperprior, crops: Tensor, lmbda: float, bits: dict[str, int], moments: dict[str, Tensor],
    build_h_s: Callable[[dict[str, int]], IntegerNet],
) -> dict[str, float]:
    """Float model against all chosen widths at once (h_s as the integer network the file
    will hold), on the calibration crops."""
    before = RDProbe(model, crops, lmbda).summary()
    h_s = build_h_s(bits)  # before the swap: calibrated with the float g_a and h_a, as the export does
    transforms = {l: b for l, b in bits.items() if not l.startswith("h_s")}
    quantized = {l: quantized_copy(model.get_submodule(l), b, moments.get(l)) for l, b in transforms.items()}
    with replaced_weights(model, quantized):
        after = RDProbe(model, crops, lmbda).summary_with_h_s(h_s)
    return {"bpp_float": before["bpp"], "bpp_quantized": after["bpp"],
            "psnr_float": before["psnr"], "psnr_quantized": after["psnr"],
            "loss_float": before["loss"], "loss_quantized": after["loss"]}
