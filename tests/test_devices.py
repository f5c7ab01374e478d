"""Decoded pixels do not depend on the device: both codecs synthesise in float64.

Another device sums a convolution in another order. On the CPU, channels-last kernels do
the same: they change float64 outputs by ~1e-15, which moves no 8-bit pixel (float32 would
move some). The CUDA test runs only where a GPU exists.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from helpers import SAMPLES
from lic import bitstream, models
from lic.codecs.base import Encoded, to_pixels

SETTINGS = [("hyperprior", 3), ("vq", 4)]


def _data(model: str, quality: int) -> bytes:
    image = np.asarray(Image.open(SAMPLES / "landscape.png").convert("RGB"))[:128, :192]
    return lic.compress(image, quality=quality, model=model)


def _synthesis_input(codec, data: bytes) -> tuple[torch.nn.Module, torch.Tensor]:
    header, streams = bitstream.unpack(data)
    encoded = Encoded(streams, header.digest)
    if codec.family == "vq":
        indices = torch.from_numpy(codec.decode_indices(encoded, 128, 192))
        return codec.decoder, codec.codebooks[codec.level].to(torch.float64)[indices].permute(2, 0, 1)[None]
    symbols = codec.decode_symbols(encoded, 128, 192)
    return codec.g_s, symbols["y"] + symbols["means"]


@pytest.mark.parametrize("model, quality", SETTINGS)
def test_another_summation_order_moves_no_pixel(model, quality):
    codec = models.load_codec(models.find(model, quality).path, "cpu", quality)
    network, latents = _synthesis_input(codec, _data(model, quality))
    assert all(p.dtype == torch.float64 for p in network.parameters())
    reordered = copy.deepcopy(network).to(memory_format=torch.channels_last)
    with torch.no_grad():
        plain = network(latents)
        other = reordered(latents.contiguous(memory_format=torch.channels_last))
    assert not torch.equal(plain, other)  # the order did change the sums
    assert (plain - other).abs().max() < 1e-12
    assert torch.equal(to_pixels(plain), to_pixels(other))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("model, quality", SETTINGS)
def test_cpu_and_cuda_decode_the_same_pixels(model, quality):
    data = _data(model, quality)
    on_cpu = np.asarray(lic.decompress(data, device="cpu"))
    on_cuda = np.asarray(lic.decompress(data, device="cuda"))
    assert np.array_equal(on_cpu, on_cuda)
