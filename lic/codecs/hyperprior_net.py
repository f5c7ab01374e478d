"""The mean-scale hyperprior as a float network: what `lic train` trains and `lic.export`
turns into a model file.

Its four transforms are built here once: the runtime codec (`lic.codecs.hyperprior`) loads a
model file's weights into the same g_a, h_a and g_s, and the export makes h_s an exact
integer network. Training adds CompressAI's entropy models (likelihoods for the rate term)
and `rd_loss`, the objective every trainer and the quantizer's sensitivity measure share.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import Tensor, nn

from lic.codecs.latent.gaussian import SCALE_LEVELS, SCALE_LOG_STEP, SCALE_MIN

#: CompressAI's MSE lambda ladder (quality 1..8).
LAMBDAS_MSE = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
#: CompressAI's MS-SSIM lambda ladder (quality 1..8).
LAMBDAS_MSSSIM = {1: 2.40, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.50, 7: 115.37, 8: 220.0}

#: Every convolution of the transforms, by state-dict name: what mixed precision chooses bits for.
QUANTIZABLE_LAYERS = (
    "g_a.0", "g_a.2", "g_a.4", "g_a.6", "h_a.0", "h_a.2", "h_a.4",
    "h_s.0", "h_s.2", "h_s.4", "g_s.0", "g_s.2", "g_s.4", "g_s.6",
)
H_S_LAYERS = ("h_s.0", "h_s.2", "h_s.4")


def analysis(N: int, M: int) -> nn.Sequential:
    """g_a: pixels [B, 3, H, W] -> latents y [B, M, H/16, W/16]."""
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis(N: int, M: int) -> nn.Sequential:
    """g_s: latents y -> pixels in about [0, 1]."""
    return nn.Sequential(
        deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
        deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
    )


def hyper_analysis(N: int, M: int) -> nn.Sequential:
    """h_a: latents y -> hyper-latents z [B, N, H/64, W/64]."""
    return nn.Sequential(
        conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
        conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N),
    )


class MeanScaleHyperprior(nn.Module):
    """The float network that is trained; `lic.export.hyperprior.export` makes the codec from it."""

    def __init__(self, N: int = 128, M: int = 192) -> None:
        super().__init__()
        self.N, self.M = N, M
        self.g_a = analysis(N, M)
        self.g_s = synthesis(N, M)
        self.h_a = hyper_analysis(N, M)
        # ReLU only: this network is converted to integer arithmetic at export.
        self.h_s = nn.Sequential(
            deconv(N, M), nn.ReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.ReLU(inplace=True),
            conv(M * 3 // 2, M * 2, stride=1, kernel_size=3),
        )
        with torch.no_grad():  # start near the middle of the scale table, not at 0.11
            self.h_s[-1].bias[:M].fill_(SCALE_LEVELS / 2)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None, scale_bound=SCALE_MIN)

    def entropy_parameters(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        index, means = self.h_s(z_hat).chunk(2, dim=1)
        return SCALE_MIN * torch.exp(SCALE_LOG_STEP * index), means

    def forward(self, x: Tensor) -> dict:
        y = self.g_a(x)
        z = self.h_a(y)
        # Under bf16 autocast the transforms run in bf16, but likelihoods (and h_s, which
        # picks scale indices) stay in float32: bf16 CDF differences would misstate rates.
        with torch.autocast(x.device.type, enabled=False):
            y, z = y.float(), z.float()
            z_hat, z_likelihoods = self.entropy_bottleneck(z)
            scales, means = self.entropy_parameters(z_hat)
            _, y_likelihoods = self.gaussian_conditional(y, scales, means)
            # Rate from noisy y, distortion from rounded y (straight-through): the decoder
            # sees rounded values, so g_s is trained on them.
            y_hat = y + (torch.round(y - means) + means - y).detach()
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def aux_loss(self) -> Tensor:
        return self.entropy_bottleneck.loss()


def rd_loss(out: dict, x: Tensor, lmbda: float, metric: str) -> dict[str, Tensor]:
    """`lmbda * 255**2 * MSE + bpp` (metric "mse") or `lmbda * (1 - MS-SSIM) + bpp` of a forward pass."""
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log2(l.float()).sum() for l in out["likelihoods"].values()) / -pixels
    x_hat = out["x_hat"].float()
    mse = torch.mean((x_hat - x) ** 2)
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        from pytorch_msssim import ms_ssim

        distortion = 1 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0)
    return {"loss": lmbda * distortion + bpp, "bpp": bpp, "mse": mse}
