"""Adversarial training pieces for the VQ codec: patch discriminator, augmentation, losses.

At a few hundred bytes per photo the decoder must invent texture; L1 + MS-SSIM alone give
smooth pictures. A PatchGAN discriminator (hinge loss) supplies the texture, and matching
its features on real and decoded images steadies the generator. Training sets here are
small (hundreds of photos), so both images go through the same random *differentiable*
augmentation before the discriminator sees them (Zhao et al., "Differentiable Augmentation
for Data-Efficient GAN Training", 2020): the discriminator cannot memorise the photos, and
since the same transform is applied to both, their features stay aligned for matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """A real/fake logit per patch (receptive field ~70 px) and the hidden features."""

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, channels, 4, stride=2, padding=1)]
        c = channels
        for i in range(1, layers + 1):
            c_next = channels * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks.append(spectral_norm(nn.Conv2d(c, c_next, 4, stride=stride, padding=1)))
            c = c_next
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, 1, 4, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        h = x * 2 - 1
        for block in self.blocks:
            h = F.leaky_relu(block(h), 0.2)
            features.append(h)
        return self.head(h), features


def augment_pair(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The same random colour jitter, translation (1/8 of the side) and cutout (1/4 of the
    area) per sample, applied to both batches; every step is differentiable in the pixels."""
    b, _, h, w = real.shape
    dev = real.device

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    both = torch.cat([real, fake])
    brightness, saturation, contrast = rand(b, 1, 1, 1) - 0.5, rand(b, 1, 1, 1) * 2, rand(b, 1, 1, 1) + 0.5
    brightness, saturation, contrast = (t.repeat(2, 1, 1, 1) for t in (brightness, saturation, contrast))
    both = both + brightness
    mean = both.mean(dim=1, keepdim=True)
    both = (both - mean) * saturation + mean
    mean = both.mean(dim=(1, 2, 3), keepdim=True)
    both = (both - mean) * contrast + mean

    shift = ((rand(b, 2) - 0.5) * 2 * torch.tensor([h / 8, w / 8])).round().long().to(dev).repeat(2, 1)
    rows = (torch.arange(h, device=dev).view(1, h, 1) - shift[:, 0].view(-1, 1, 1)).clamp(0, h - 1)
    cols = (torch.arange(w, device=dev).view(1, 1, w) - shift[:, 1].view(-1, 1, 1)).clamp(0, w - 1)
    index = (rows * w + cols).view(2 * b, 1, h * w).expand(-1, both.shape[1], -1)
    both = both.flatten(2).gather(2, index).view_as(both)

    centre = (rand(b, 2) * torch.tensor([h, w])).long().to(dev).repeat(2, 1)
    ys, xs = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
    hole = ((ys - centre[:, 0].view(-1, 1, 1)).abs() < h // 4) & ((xs - centre[:, 1].view(-1, 1, 1)).abs() < w // 4)
    both = both * (~hole).unsqueeze(1).to(both.dtype)
    return both[:b], both[b:]


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


def feature_matching_loss(real_features: list[Tensor], fake_features: list[Tensor]) -> Tensor:
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real_features, fake_features)) / len(real_features)


def adaptive_gan_weight(reconstruction: Tensor, adversarial: Tensor, last_layer: Tensor, cap: float = 1e4) -> Tensor:
    """VQGAN's balance: scale the GAN gradient at the decoder's last layer to the size of
    the reconstruction gradient there, so neither loss drowns the other."""
    g_rec = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, cap).detach()
