"""Exporting a trained hyperprior: float network -> model-file tensors.

The transforms are stored in float16 or as mixed-precision integers (GPTQ-rounded); h_s
becomes the exact integer network of `lic.codecs.latent.hyperprior`, calibrated on a few
images; the entropy bottleneck and the scale table become integer CDF tables.
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import Tensor

from lic.codecs.hyperprior_net import H_S_LAYERS, LAMBDAS_MSE, QUANTIZABLE_LAYERS, MeanScaleHyperprior
from lic.codecs.latent.factorized import Z_STEP
from lic.codecs.latent.gaussian import MEAN_STEP, scale_table
from lic.codecs.latent.hyperprior import Z_INPUT_BOUND
from lic.entropy import CdfTables
from lic.entropy.integer_net import IntegerNet, quantize_network
from lic.errors import InputError
from lic.quantization.gptq import input_moments, quantize_layer


#: `lic export` and `lic quantize` calibrate on training images with both sides at least this.
CALIBRATION_SIDE = 256


def float_model(state: dict[str, Tensor], quality: int, name: str) -> tuple[MeanScaleHyperprior, dict]:
    """The float network of trained weights `state` and the config its model file records
    (`lic export`, `lic quantize`); an InputError if `state` is not a hyperprior's."""
    try:
        N, M = int(state["g_a.0.weight"].shape[0]), int(state["g_a.6.weight"].shape[0])
        model = MeanScaleHyperprior(N, M)
        model.load_state_dict(state)
    except (KeyError, RuntimeError):
        raise InputError("not the float weights of a hyperprior (MeanScaleHyperprior state dict)") from None
    config = {"name": name, "family": "hyperprior", "quality": quality, "N": N, "M": M,
              "lambda": LAMBDAS_MSE[quality], "metric": "mse"}
    return model.eval(), config


def calibration_batch(images: list[Tensor], count: int = 8, side: int = 256) -> Tensor:
    """Fixed crops that set the integer h_s's activation ranges at every export."""
    picks = images[:: max(1, len(images) // count)][:count]
    side = min(side, *(min(im.shape[1:]) for im in picks))
    return torch.stack([im[:, :side, :side] for im in picks]).float().cpu() / 255


def export_model(model: MeanScaleHyperprior, images: list[Tensor]) -> dict[str, Tensor]:
    """`lic export`: the model file's tensors, h_s calibrated on crops of training `images`."""
    return export(model, calibration_batch(images))


def _transform_weights(
    model: MeanScaleHyperprior, weight_bits: Mapping[str, int] | None, moments: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """g_a, h_a, g_s: conv weights in float16 (`weight_bits` None) or per-channel integers of
    the given widths (GPTQ-rounded for layers with input `moments`); biases in float16; GDN
    parameters in float32, or float16 in quantized files."""
    out = {}
    for part in ("g_a", "h_a", "g_s"):
        module = getattr(model, part)
        for name, value in module.state_dict().items():
            key = f"{part}.{name}"
            layer = key.rsplit(".", 1)[0]
            if weight_bits is not None and name.endswith(".weight") and layer in weight_bits:
                conv_layer = module[int(name.split(".")[0])]
                out.update(quantize_layer(conv_layer, weight_bits[layer], moments.get(layer)).to_tensors(key))
                continue
            # GDN parameters stay float32 in float16 exports (the reference the quantized files
            # are measured against); quantized files store them as float16 too: 0.2 MB less,
            # and q4/q8 on four Kodak images moved by at most 0.004 dB and 4 bytes.
            is_gdn_param = name.endswith(("beta", "gamma", "pedestal"))
            dtype = torch.float32 if is_gdn_param and weight_bits is None else torch.float16
            out[key] = value.detach().to("cpu", dtype).contiguous()
    return out


@torch.no_grad()
def export(
    model: MeanScaleHyperprior,
    calibration: Tensor,
    weight_bits: Mapping[str, int] | None = None,
    moments: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """The tensors of a model file: transforms, integer h_s, integer CDF tables.

    calibration: a few images [B, 3, H, W] in [0, 1] to calibrate h_s's integer ranges.
    weight_bits: bit width per layer of `QUANTIZABLE_LAYERS` (mixed precision); None keeps
    float16 transforms and int8 h_s. h_s layers not named stay at 8 bits.
    moments: per layer, the input second moments that GPTQ rounding uses (`transform_moments`).
    """
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()
    eb = model.entropy_bottleneck
    eb.quantiles[:, :, 1] = torch.round(eb.quantiles[:, :, 1] / Z_STEP) * Z_STEP
    eb.update(force=True)
    gc = model.gaussian_conditional
    gc.update_scale_table(scale_table().float(), force=True)

    h_s = integer_h_s(model, calibration_z_hat(model, calibration), weight_bits or {})
    tensors = _transform_weights(model, weight_bits, moments or {})
    tensors.update(h_s.to_tensors("h_s"))
    tensors.update(CdfTables.from_compressai(eb).to_tensors("z_tables"))
    tensors.update(CdfTables.from_compressai(gc).to_tensors("y_tables"))
    tensors["z_medians16"] = torch.round(eb.quantiles[:, 0, 1] / Z_STEP).to(torch.int64)
    return tensors


@torch.no_grad()
def calibration_z_hat(model: MeanScaleHyperprior, calibration: Tensor) -> Tensor:
    """The z_hat (on the medians' Z_STEP grid, as the codec rounds it) of `calibration` images
    [B, 3, H, W] in [0, 1]: what the integer h_s's hidden ranges are calibrated on."""
    medians = (torch.round(model.entropy_bottleneck.quantiles[:, 0, 1] / Z_STEP) * Z_STEP).view(1, -1, 1, 1)
    z = model.h_a(model.g_a(calibration.float()))
    return torch.round(z - medians) + medians


def integer_h_s(model: MeanScaleHyperprior, z_hat: Tensor, weight_bits: Mapping[str, int]) -> IntegerNet:
    """h_s as the exact integer network (h_s layers not in `weight_bits` at 8 bits), calibrated
    on `z_hat` (`calibration_z_hat`)."""
    out_step = torch.cat([torch.ones(model.M), torch.full((model.M,), MEAN_STEP)]).double()
    bits = [weight_bits.get(name, 8) for name in H_S_LAYERS]
    return quantize_network(model.h_s, z_hat, Z_STEP, out_step, Z_INPUT_BOUND, weight_bits=bits)


def transform_moments(model: MeanScaleHyperprior, images: Tensor) -> dict[str, Tensor]:
    """GPTQ's input statistics for g_a, h_a and g_s (h_s is rounded by its integer export)."""
    layers = tuple(l for l in QUANTIZABLE_LAYERS if not l.startswith("h_s"))
    with torch.no_grad():
        return input_moments(model.eval(), lambda: model(images), layers)
