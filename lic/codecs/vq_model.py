"""The VQ autoencoder: a convolutional VQGAN-style encoder/decoder with downsampling 16.

One codebook index per 16x16 block is the whole bitstream, so everything the picture gets
beyond that comes from the decoder. Choices, and why:

- Convolutions and residual blocks only (no attention): the model must decode a Kodak image
  on two CPU cores in seconds and ship in the wheel.
- `ChannelNorm` normalises each pixel over its channels. Unlike GroupNorm or BatchNorm its
  statistics do not depend on the image size, so a model trained on crops behaves the same
  on a full photo.
- The outermost 2x resampling is a pixel (un)shuffle instead of a full-resolution
  convolution: full-resolution layers dominate the decode time for little gain.
- Codes are low-dimensional and L2-normalised (cosine-similarity VQ, as in ViT-VQGAN),
  initialised by k-means, updated by EMA, with dead codes restarted from the batch and the
  rotation trick for gradients (`vector_quantize_pytorch.VectorQuantize`). These keep a
  codebook of thousands of entries in use when trained from scratch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIDE = 16


@dataclass(frozen=True)
class VQArchitecture:
    """What a model file's config must record to rebuild the networks."""

    channels: tuple[int, ...] = (32, 64, 128, 192)  # at 1/2, 1/4, 1/8, 1/16 resolution
    blocks: tuple[int, ...] = (1, 1, 1, 1)  # residual blocks per resolution, same order
    code_dim: int = 16
    codebook_size: int = 4096

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or len(self.blocks) != 4:
            raise ValueError("a VQ model has four resolutions (1/2 .. 1/16): give four channels and blocks")

    def to_config(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_config(cls, config: dict) -> "VQArchitecture":
        return cls(tuple(config["channels"]), tuple(config["blocks"]), int(config["code_dim"]),
                   int(config["codebook_size"]))


class ChannelNorm(nn.Module):
    """Per-pixel normalisation over channels (LayerNorm of each feature vector)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # layer_norm over the last dimension is one fused pass per pixel: several times
        # faster on CPU than reducing over dim 1 of an NCHW tensor.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)
        return y.permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = ChannelNorm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = ChannelNorm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Upsample(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _stage(cin: int, cout: int, blocks: int) -> list[nn.Module]:
    return [ResBlock(cin if i == 0 else cout, cout) for i in range(blocks)]


class Encoder(nn.Module):
    """[B, 3, H, W] in [0, 1] -> [B, code_dim, H/16, W/16] (not yet normalised)."""

    def __init__(self, arch: VQArchitecture) -> None:
        super().__init__()
        c, b = arch.channels, arch.blocks
        layers: list[nn.Module] = [nn.PixelUnshuffle(2), nn.Conv2d(12, c[0], 3, padding=1)]
        for i in range(4):
            layers += _stage(c[i], c[i], b[i])
            if i < 3:
                layers.append(nn.Conv2d(c[i], c[i + 1], 4, stride=2, padding=1))
        layers += [ChannelNorm(c[3]), nn.SiLU(), nn.Conv2d(c[3], arch.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * 2 - 1)


class Decoder(nn.Module):
    """[B, code_dim, h, w] codes -> [B, 3, 16h, 16w] image, about [0, 1] (not clamped)."""

    def __init__(self, arch: VQArchitecture) -> None:
        super().__init__()
        c, b = arch.channels, arch.blocks
        layers: list[nn.Module] = [nn.Conv2d(arch.code_dim, c[3], 3, padding=1)]
        for i in (3, 2, 1, 0):
            layers += _stage(c[i], c[i], b[i])
            if i > 0:
                layers.append(Upsample(c[i], c[i - 1]))
        layers += [ChannelNorm(c[0]), nn.SiLU(), nn.Conv2d(c[0], 12, 3, padding=1), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    @property
    def last_layer(self) -> Tensor:
        """The output convolution's weight (the GAN loss is balanced against it)."""
        return self.net[-2].weight

    def forward(self, codes: Tensor) -> Tensor:
        return (self.net(codes) + 1) / 2


class VQAutoencoder(nn.Module):
    """The trained network: encoder, quantiser, decoder. `lic.codecs.vq.export` ships it."""

    def __init__(self, arch: VQArchitecture, dead_code_threshold: float = 0.0, commitment: float = 0.25) -> None:
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.arch = arch
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch)
        self.quantizer = VectorQuantize(
            dim=arch.code_dim,
            codebook_size=arch.codebook_size,
            use_cosine_sim=True,
            kmeans_init=True,
            kmeans_iters=10,
            decay=0.99,
            threshold_ema_dead_code=dead_code_threshold,
            commitment_weight=commitment,
            rotation_trick=True,
            accept_image_fmap=True,
        )

    @property
    def codebook(self) -> Tensor:
        """[K, code_dim], unit vectors."""
        return self.quantizer.codebook

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.encoder(x)
        codes, indices, commit = self.quantizer(z.float())
        return {"x_hat": self.decoder(codes.to(z.dtype)), "indices": indices, "commit": commit.sum()}


def nearest_code(z: Tensor, codebook: Tensor) -> Tensor:
    """Index of the most similar code (cosine) for each position of z [B, D, h, w]."""
    scores = torch.einsum("bdhw,kd->bkhw", F.normalize(z.float(), dim=1), codebook.float())
    return scores.argmax(dim=1)
