"""Optional LPIPS loss, only from weights already on this machine (nothing is downloaded).

The `lpips` package ships its small linear heads; the VGG-16 trunk comes from torchvision's
ImageNet weights, which are used only if they already sit in the torch hub cache.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lic.errors import InputError

VGG16_FILE = "vgg16-397923af.pth"


def vgg16_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def load_lpips(device: torch.device) -> nn.Module:
    """LPIPS (VGG) as a frozen loss module; InputError if the trunk weights are absent."""
    path = vgg16_cache_path()
    if not path.is_file():
        raise InputError(f"LPIPS needs the VGG-16 weights at {path} (lic never downloads them); "
                         "train without --lpips-weight")
    import lpips

    model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    trunk = torch.load(path, map_location="cpu", weights_only=True)
    # lpips splits torchvision's `features` into slices that keep the original layer numbers.
    for slice_module in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for name, layer in slice_module.named_children():
            if isinstance(layer, nn.Conv2d):
                layer.weight.data.copy_(trunk[f"features.{name}.weight"])
                layer.bias.data.copy_(trunk[f"features.{name}.bias"])
    model.requires_grad_(False)
    return model.eval().to(device)
