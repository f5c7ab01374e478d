"""Exporting a trained VQ autoencoder: networks, codebooks and index context models -> model-file tensors."""

from __future__ import annotations

import torch
from torch import Tensor

from lic.codecs.vq_model import VQAutoencoder
from lic.entropy.index_context import IndexContextModel


def _float_weights(prefix: str, module: torch.nn.Module) -> dict[str, Tensor]:
    """Convolutions in float16 (half the file, no visible change); norms in float32."""
    out = {}
    for name, value in module.state_dict().items():
        dtype = torch.float16 if value.ndim == 4 else torch.float32
        out[f"{prefix}.{name}"] = value.detach().to("cpu", dtype).contiguous()
    return out


def export(model: VQAutoencoder, codebooks: dict[int, Tensor], contexts: dict[int, IndexContextModel]) -> dict[str, Tensor]:
    """The tensors of a model file: networks, one codebook and one context model per level."""
    tensors = _float_weights("encoder", model.encoder)
    tensors.update(_float_weights("decoder", model.decoder))
    for level, codebook in codebooks.items():
        tensors[f"codebook.{level}"] = codebook.detach().to("cpu", torch.float16).contiguous()
        tensors.update(contexts[level].to_tensors(f"context.{level}"))
    return tensors
