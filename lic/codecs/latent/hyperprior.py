"""The hyperprior's latent codec: a factorized stage for z, a Gaussian-conditional stage for y,
and between them the exact integer hyper-synthesis h_s with the digest of what it derives.

    encode:  y --h_a--> z --round--> z symbols (factorized stage, stream 0)
             z_hat --integer h_s--> (scale index, mean) per element of y, and their digest
             y --(y - mean) / Δ, round--> y symbols (Gaussian-conditional stage, stream 1)
    decode:  stream 0 -> z symbols -> integer h_s -> index, means, digest (checked against the
             file's) -> stream 1 -> y symbols -> y_hat

h_s is trained to output, per element of y, a scale index t (scale = 0.11 * exp(Δ t)) and a
mean. At export it becomes an integer network (`lic.entropy.integer_net`) whose outputs are
the index itself and the mean in units of 1/16; it reads z_hat in units of 1/16. Its
arithmetic is exact, so encoder and decoder derive the same indices and means bit for bit.
The 4-byte digest of all indices and means goes in the file: a decoder that ever derives
different ones stops with a clear error instead of producing garbage.

An analysis (what the encoder decided) is a dict: z and y symbols, index, means, digest, step.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

from lic.codecs.base import Encoded
from lic.codecs.latent.factorized import FactorizedStage
from lic.codecs.latent.gaussian import MAX_STEP, GaussianConditionalStage, parameters_from, shifted
from lic.codecs.tiling import run_tiled
from lic.entropy.integer_net import IntegerNet
from lic.errors import DeterminismError, FormatError

HYPER_STRIDE = 4  # y cells per z cell along each side
HYPER_HALO = 2  # z cells: an h_s output reads z up to 1 cell before and 2 cells after its own
Z_INPUT_BOUND = 2**15  # |z_hat / Z_STEP| is clipped here before h_s (never reached in practice)


def parameter_digest(index: Tensor, means16: Tensor) -> bytes:
    """The 4-byte digest of the entropy parameters: the int16 indices, then the int64 means in
    units of 1/16, fed one channel at a time rather than from whole-image copies."""
    digest = hashlib.blake2b(digest_size=4)
    for channel in index[0]:
        digest.update(channel.to(torch.int16).numpy().astype("<i2", copy=False))
    for channel in means16:
        digest.update(channel.to(torch.int64).numpy().astype("<i8", copy=False))
    return digest.digest()


class HyperpriorLatentCodec:
    """y -> two streams and a digest, and back; see the module docstring."""

    hyper_tile = 16  # z cells per tile side in h_s: 1024x1024 pixels, ~0.2 GB of float64 activations

    def __init__(self, h_a: nn.Module, z: FactorizedStage, h_s: IntegerNet, y: GaussianConditionalStage,
                 device: torch.device) -> None:
        self.h_a = h_a.to(device).eval()
        self.z = z
        self.h_s = h_s
        self.y = y
        self.device = device

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], h_a: nn.Module, device: torch.device) -> "HyperpriorLatentCodec":
        """The latent codec of a model file (`h_a`: the float transform, weights loaded)."""
        return cls(h_a, FactorizedStage.from_tensors(tensors, "z"), IntegerNet.from_tensors(tensors, "h_s"),
                   GaussianConditionalStage.from_tensors(tensors, "y"), device)

    def entropy_parameters(self, z_symbols: Tensor) -> tuple[Tensor, Tensor, bytes]:
        """Exact integer h_s: table index per y element (uint8), means, and their digest.

        h_s runs tile by tile: its float64 im2col buffers for a whole 24-megapixel image
        were 2.5 GB. Its arithmetic is exact, so the tiles give the whole-image integers."""
        out = run_tiled(self.h_s, self.z.on_grid(z_symbols), 1, HYPER_STRIDE, self.hyper_tile, HYPER_HALO)
        channels = out.shape[1] // 2
        index, means = parameters_from(out, channels)
        return index, means, parameter_digest(index, out[0, channels:])

    @torch.no_grad()
    def analyse(self, y: Tensor, step: int = 0) -> dict:
        """The symbols, table indices, means and digest for latents y: z = h_a(y) rounded,
        then y rounded against the means the integer h_s derives from z."""
        z = self.h_a(y.to(self.device)).to("cpu", torch.float64)
        return self.analyse_symbols(self.z.symbols(z), y, step)

    @torch.no_grad()
    def analyse_symbols(self, z_symbols: Tensor, y: Tensor, step: int = 0) -> dict:
        """The analysis for given z symbols: y rounded against the means they give, in steps of
        `step_size(step)` (rate control) with the tables shifted to match."""
        index, means, digest = self.entropy_parameters(z_symbols)
        return self.quantise(y, {"z": z_symbols, "index": index, "means": means, "digest": digest}, step)

    @staticmethod
    def quantise(y: Tensor, base: dict, step: int) -> dict:
        """y's symbols for the entropy parameters of `base` (an analysis at step 0, or its
        z, index, means and digest) at quantisation step code `step`."""
        symbols = GaussianConditionalStage.quantise(y, base["means"], step)
        return {**base, "y": symbols, "index": shifted(base["index"], step), "step": step}

    @staticmethod
    def latents_hat(a: dict) -> Tensor:
        """The y_hat g_s decodes from an analysis (or decoded symbols)."""
        return GaussianConditionalStage.dequantise(a["y"].clone(), a["means"], a.get("step", 0))

    def streams(self, a: dict[str, Tensor]) -> Encoded:
        """The streams of an analysis; `a` is left as it was."""
        a = dict(a)
        del a["means"]  # y is coded relative to them; not needed any more
        z_stream = self.z.encode(a.pop("z"))
        return Encoded([z_stream, self.y.encode(a.pop("y"), a.pop("index"))], a["digest"], a.get("step", 0))

    @torch.no_grad()
    def decode_symbols(self, encoded: Encoded, height: int, width: int) -> dict[str, Tensor]:
        """The symbols, indices and means of `encoded`, for latents y of `height` x `width`."""
        if len(encoded.streams) != 2 or any(len(s) % 4 for s in encoded.streams):
            raise FormatError("hyperprior payload must hold two streams of 32-bit words")
        z_symbols = self.z.decode(encoded.streams[0], height // HYPER_STRIDE, width // HYPER_STRIDE, "z stream")
        index, means, digest = self.entropy_parameters(z_symbols)
        if digest != encoded.digest:
            raise DeterminismError(
                "this machine derived different entropy parameters than the encoder "
                "(hyper-decoder digest mismatch); the file is damaged or cannot be decoded here"
            )
        if abs(encoded.step) > MAX_STEP:
            raise FormatError(f"the file header is corrupted (quantisation step code {encoded.step})")
        index = shifted(index, encoded.step)
        y = self.y.decode(encoded.streams[1], index, "y stream")
        return {"z": z_symbols, "y": y, "index": index, "means": means, "step": encoded.step}

    def decode(self, encoded: Encoded, height: int, width: int) -> Tensor:
        """y_hat of `encoded` (`height` x `width` latents)."""
        s = self.decode_symbols(encoded, height, width)
        return GaussianConditionalStage.dequantise(s.pop("y"), s.pop("means"), s["step"])
