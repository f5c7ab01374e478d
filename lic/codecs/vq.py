"""VQ codec for extreme rates (about 0.015-0.05 bpp): codebook indices are the bitstream.

After "Extreme Image Compression using Fine-tuned VQGANs" (Mao et al., DCC 2024), with a
VQ autoencoder trained here (`lic.codecs.vq_model`):

Encoder:   x --encoder--> z (one vector per 16x16 block) --nearest code of level L--> indices
Bitstream: one stream: a mode byte, then the index map
             mode 0: entropy coded by the level's integer context model
                     (`lic.entropy.index_context`): 3 passes, each conditioned on decoded
                     neighbours; the header's digest field holds the digest of its tables
             mode 1: fixed length, ceil(log2 K) bits per index, row-major, MSB first;
                     digest field 0
           The encoder writes whichever is shorter, so a file never costs more than
           log2(K) bits per block plus a few bytes, even where an image is unlike the
           training set and the context model predicts worse than no model.
Decoder:   indices --codebook of level L--> codes --decoder--> x_hat

Rate levels (the header's quality byte) differ only in the codebook: level L uses a
k-means-reduced codebook of K = 2**(L+4) codes (`lic.train.vq_levels`), so before entropy
coding an image costs log2(K)/256 bits per pixel. One model file holds all levels.

Determinism: the encoder's choices need not be reproducible (the decoder only reads
indices). What the decoder derives -- the probability of every index -- comes from integer
tables and exact integer arithmetic, and a digest of it is in the header's digest field, so
the index map decodes identically on every machine. The synthesis network runs in float64 on
every device (as the hyperprior's g_s does; never TF32 on a GPU): its rounding errors
(~1e-16) only matter for a pixel within ~1e-13 of a rounding boundary, so decoded pixels
are the same on CPU and CUDA, and tiled or not, in practice. float32 was 2.6 times faster
on the CPU (1.4 s instead of 3.8 s for a Kodak image here) but moved about 1 pixel in 10^5
by one grey level between tile sizes, and more between devices; the encoder, whose choices
need not be reproducible, stays in float32.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lic.codecs.base import Encoded, to_input, to_pixels
from lic.codecs.tiling import run_tiled
from lic.codecs.vq_model import STRIDE, Decoder, Encoder, VQArchitecture, nearest_code
from lic.entropy.index_context import IndexContextModel, pack_fixed_length, unpack_fixed_length
from lic.errors import DeterminismError, FormatError, ModelError


CONTEXT_CODED, FIXED_LENGTH = 0, 1  # the index stream's mode byte
_FIXED_DIGEST = bytes(4)  # fixed-length coding derives no parameters
ENCODER_HALO, DECODER_HALO = 5, 6  # indices: the networks' receptive fields reach 4.8 and 5.8 beyond a block


def _load(module: torch.nn.Module, tensors: dict[str, Tensor], prefix: str) -> None:
    start = f"{prefix}."
    module.load_state_dict({k[len(start):]: v.float() for k, v in tensors.items() if k.startswith(start)})


class VQCodec:
    """Runs an exported VQ model at one level; `for_quality` selects another level."""

    family: ClassVar[str] = "vq"
    stride = STRIDE
    tile = 64  # indices per tile side in the encoder and decoder: 1024x1024 pixels

    def __init__(self, tensors: dict[str, Tensor], config: dict, device: torch.device) -> None:
        arch = VQArchitecture.from_config(config)
        self.device = device
        self.encoder = Encoder(arch)
        _load(self.encoder, tensors, "encoder")
        self.encoder.to(device).eval()
        decoder = Decoder(arch)
        _load(decoder, tensors, "decoder")
        self.decoder = decoder.to(device, torch.float64).eval()
        self.sizes = {int(level): int(k) for level, k in config["levels"].items()}
        self.codebooks = {level: tensors[f"codebook.{level}"] for level in self.sizes}
        self.contexts = {level: IndexContextModel.from_tensors(tensors, f"context.{level}") for level in self.sizes}
        self.level = int(config["quality"])

    def for_quality(self, quality: int) -> "VQCodec":
        """The same networks with the codebook and entropy model of level `quality`."""
        if quality not in self.sizes:
            raise ModelError(f"this vq model has no level {quality} (levels {min(self.sizes)}..{max(self.sizes)})")
        view = copy.copy(self)
        view.level = quality
        return view

    @torch.no_grad()
    def analyse(self, x: Tensor) -> np.ndarray:
        """The index map [H/16, W/16] the encoder chooses at this level."""
        z = run_tiled(lambda t: self.encoder(to_input(t).to(self.device)), x, STRIDE, 1, self.tile, ENCODER_HALO)
        return nearest_code(z, self.codebooks[self.level].to(self.device, torch.float32))[0].cpu().numpy()

    @property
    def index_bits(self) -> int:
        """Bits per index in fixed-length mode."""
        return max(1, (self.sizes[self.level] - 1).bit_length())

    def encode(self, x: Tensor) -> Encoded:
        indices = self.analyse(x)
        stream, digest = self.contexts[self.level].encode(indices)
        fixed = pack_fixed_length(indices, self.index_bits)
        if len(fixed) < len(stream):
            return Encoded([bytes([FIXED_LENGTH]) + fixed], _FIXED_DIGEST)
        return Encoded([bytes([CONTEXT_CODED]) + stream], digest)

    def decode_indices(self, encoded: Encoded, height: int, width: int) -> np.ndarray:
        if len(encoded.streams) != 1 or not encoded.streams[0]:
            raise FormatError("a vq payload holds exactly one non-empty stream")
        if encoded.step:
            raise FormatError("the file header is corrupted (a quantisation step in a vq file)")
        mode, payload = encoded.streams[0][0], encoded.streams[0][1:]
        shape = (height // STRIDE, width // STRIDE)
        if mode == FIXED_LENGTH:
            try:
                indices = unpack_fixed_length(payload, shape, self.index_bits)
            except ValueError as e:
                raise FormatError(str(e)) from None
            if encoded.digest != _FIXED_DIGEST or indices.max(initial=0) >= self.sizes[self.level]:
                raise FormatError("the fixed-length index stream is corrupted")
            return indices
        if mode != CONTEXT_CODED:
            raise FormatError(f"unknown vq index-stream mode {mode}")
        indices, digest = self.contexts[self.level].decode(payload, *shape)
        if digest != encoded.digest:
            raise DeterminismError(
                "this machine derived different entropy parameters than the encoder "
                "(index-context digest mismatch); the file is damaged or cannot be decoded here"
            )
        return indices

    @torch.no_grad()
    def synthesise(self, indices: np.ndarray) -> Tensor:
        codes = self.codebooks[self.level].to(torch.float64)[torch.from_numpy(indices)].permute(2, 0, 1)[None]
        return run_tiled(lambda t: self.decoder(t.to(self.device)), codes, 1, STRIDE, self.tile, DECODER_HALO,
                         finish=lambda t: to_pixels(t).cpu())

    def decode(self, encoded: Encoded, height: int, width: int) -> Tensor:
        return self.synthesise(self.decode_indices(encoded, height, width))
