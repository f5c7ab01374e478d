"""Perceptual metrics: LPIPS (learned) and DSS, HaarPSI, GMSD (weight-free, from piq).

LPIPS compares deep features of an ImageNet-trained AlexNet. The `lpips` package ships its
own small linear heads, but the backbone comes from torchvision, which would download it.
lic never downloads anything: the backbone is read only from the standard torch cache
(`torch.hub.get_dir()/checkpoints/`, which honours TORCH_HOME), and LPIPS is skipped when it
is not there. `random_backbone=True` builds LPIPS on an untrained backbone, which gives
meaningless numbers but exercises the whole code path (the tests use it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np
import torch

#: The ImageNet backbones LPIPS can use, as torchvision names their weights.
_BACKBONE_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights"}

#: LPIPS needs this many pixels per side (AlexNet's pooling shrinks smaller inputs to nothing).
LPIPS_MIN_SIDE = 32


def backbone_checkpoint(net: str = "alex") -> Path:
    """Where torchvision caches the ImageNet weights of LPIPS's backbone."""
    import torchvision.models

    url = getattr(torchvision.models, _BACKBONE_WEIGHTS[net]).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def missing_backbone_note(net: str = "alex") -> str:
    path = backbone_checkpoint(net)
    return (f"LPIPS skipped (values are null): the {net} ImageNet backbone is not at {path}, "
            f"and lic never downloads it; put {path.name} there (or set TORCH_HOME) to measure LPIPS")


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 to a 1 x 3 x H x W float tensor in [0, 1]."""
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255


def lpips_network(net: str = "alex", checkpoint: Path | None = None) -> "torch.nn.Module":
    """The lpips package's network with the backbone read from `checkpoint` (None: random).

    Shared by the metric and the optional LPIPS training loss, so both load weights alike."""
    import lpips

    # pnet_rand=True builds the backbone without touching torchvision's downloader; the
    # ImageNet weights are then loaded from the cache file, never fetched.
    model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        backbone = model.net
        # lpips splits torchvision's `features` into slices that keep the layer indices:
        # "slice2.3.weight" is torchvision's "features.3.weight".
        backbone.load_state_dict({k: state["features." + k.split(".", 1)[1]] for k in backbone.state_dict()})
    return model


class Lpips:
    """LPIPS distance (0 = identical, higher = more different) between uint8 RGB images."""

    def __init__(self, net: str = "alex", checkpoint: Path | None = None) -> None:
        """`checkpoint`: torchvision's ImageNet weights of the backbone; None leaves it random."""
        self.model = lpips_network(net, checkpoint)

    @torch.inference_mode()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> float | None:
        if min(a.shape[:2]) < LPIPS_MIN_SIDE:
            return None
        return float(self.model(_to_tensor(a), _to_tensor(b), normalize=True))


@lru_cache(maxsize=2)
def _lpips(net: str, checkpoint: Path | None) -> Lpips:
    return Lpips(net, checkpoint)  # building the backbone takes seconds: once per process


def load_lpips(net: str = "alex", random_backbone: bool = False) -> Lpips | None:
    """LPIPS, or None when its backbone weights are not in the torch cache."""
    checkpoint = None if random_backbone else backbone_checkpoint(net)
    if checkpoint is not None and not checkpoint.is_file():
        return None
    return _lpips(net, checkpoint)


def _piq(name: str) -> Callable[[np.ndarray, np.ndarray], float | None]:
    def metric(a: np.ndarray, b: np.ndarray) -> float | None:
        import piq

        with torch.inference_mode():
            value = float(getattr(piq, name)(_to_tensor(a), _to_tensor(b), data_range=1.0))
        return None if np.isnan(value) else value  # DSS is undefined below 32 px a side

    metric.__doc__ = f"piq.{name} on uint8 RGB images; None where it is undefined."
    return metric


#: Weight-free perceptual metrics, computed on the full-resolution images. DSS and HaarPSI are
#: similarities (1 = identical, higher is better); GMSD is a deviation (0 = identical).
WEIGHT_FREE = {"dss": _piq("dss"), "haarpsi": _piq("haarpsi"), "gmsd": _piq("gmsd")}
