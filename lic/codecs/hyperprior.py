"""The mean-scale hyperprior image codec (Minnen, Ballé & Toderici 2018, without the context
model): analysis/synthesis transforms + the hyperprior latent codec.

    encode:  x --g_a--> y --latent codec--> z and y streams, digest  (`lic.codecs.latent.hyperprior`)
    decode:  streams --latent codec--> y_hat --g_s--> x_hat

How decoding stays identical on every machine (the scheme the tests check):

1. Every probability comes from integer CDF tables fixed at export and chosen by integers
   that an exact integer network derives (`lic.codecs.latent`); a digest of those integers
   travels in the file and is checked.
2. g_s runs in float64. Its rounding errors (~1e-16) only matter if a pixel lies within
   ~1e-13 of a rounding boundary, so decoded pixels match across machines in practice.
   (`decode(..., fast=True)` runs g_s in float32 instead; entropy decoding is the same
   exact integer arithmetic, so only pixel values move, never the decoded symbols.)

Training uses the float network (`lic.codecs.hyperprior_net`); `lic.export.hyperprior` turns
it into the tensors of a model file, and `HyperpriorCodec` runs those tensors. The transforms'
convolution weights are stored either in float16 or, with mixed precision (`lic quantize`), as
per-channel integers of 4 to 8 bits chosen per layer (`lic.weights`); integer weights are
widened to float once, at load, so coding speed does not change.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from lic.codecs.base import Encoded, to_input, to_pixels
from lic.codecs.hyperprior_net import analysis, hyper_analysis, synthesis
from lic.codecs.latent.gaussian import MAX_STEP
from lic.codecs.latent.hyperprior import HyperpriorLatentCodec
from lic.codecs.synthesis import Synthesis
from lic.codecs.tiling import run_tiled
from lic.errors import ModelError
from lic.weights import float_state

TRANSFORM_HALO = 2  # latents: g_a's and g_s's receptive fields reach 1.9 latents beyond a latent's own pixels
LATENT_STRIDE = 16  # pixels per latent along each side


class HyperpriorCodec:
    """Runs an exported hyperprior: `encode` to streams, `decode` back to pixels.

    An image codec of this shape is its transforms plus `latent_codec`: a family with another
    entropy model over the same transforms subclasses this and names its own latent codec."""

    family: ClassVar[str] = "hyperprior"
    latent_codec: ClassVar[type] = HyperpriorLatentCodec
    has_fast_path: ClassVar[bool] = True  # decode(..., fast=True): g_s in float32
    stride = 64
    tile = 32  # latents per tile side in g_a: 512x512 pixels
    synthesis_tile = 48  # latents per tile side in g_s: 768x768 pixels, ~0.4 GB of float64 activations (N=128)

    def __init__(self, tensors: dict[str, Tensor], config: dict, device: torch.device) -> None:
        N, M = int(config["N"]), int(config["M"])
        self.M = M  # latent channels
        self.quality = int(config["quality"])
        # The rate-distortion weight the model was trained for (loss λ·255²·MSE + bpp):
        # what `lic.codecs.refine` optimises a file's latents for.
        self.lmbda = float(config["lambda"]) if "lambda" in config else None
        self.device = device
        transforms = {"g_a": analysis(N, M), "h_a": hyper_analysis(N, M), "g_s": synthesis(N, M)}
        for part, module in transforms.items():  # integer weights are widened once, here
            module.load_state_dict(float_state(tensors, part))
        self.g_a = transforms["g_a"].to(device).eval()
        self.g_s = transforms["g_s"].to(device, torch.float64).eval()  # as trained; decoding runs `_exact` or `_fast`
        self._exact = Synthesis(self.g_s, True, device)
        self._fast: Synthesis | None = None  # made when first asked for
        self.latent = self.latent_codec.from_tensors(tensors, transforms["h_a"], device)

    def for_quality(self, quality: int) -> "HyperpriorCodec":
        """A hyperprior file codes one quality; the zoo has a file per quality."""
        if quality != self.quality:
            raise ModelError(f"this hyperprior model codes quality {self.quality}, not {quality}")
        return self

    @torch.no_grad()
    def latents(self, x: Tensor) -> Tensor:
        """g_a's y for x (float32, on the CPU): what `analyse` quantises, or what
        `lic.codecs.refine` starts from."""
        return run_tiled(lambda t: self.g_a(to_input(t).to(self.device)), x, LATENT_STRIDE, 1, self.tile,
                         TRANSFORM_HALO)

    def analyse(self, x: Tensor, step: int = 0) -> dict:
        """Everything the encoder decides (`self.latent`'s analysis of g_a's latents)."""
        return self.latent.analyse(self.latents(x), step)

    def encode(self, x: Tensor, step: int = 0) -> Encoded:
        """The streams for x; y in steps of `step_size(step)` (rate control) if step is not 0."""
        if abs(step) > MAX_STEP:
            raise ValueError(f"quantisation step codes are -{MAX_STEP}..{MAX_STEP}, not {step}")
        return self.latent.streams(self.analyse(x, step))

    def encode_reconstruct(self, x: Tensor) -> tuple[Encoded, Tensor]:
        """The streams and the 8-bit pixels a decoder will produce from them (closed-loop video
        coding predicts from these, not from the source)."""
        a = self.analyse(x)
        pixels = self.synthesise(self.latent.latents_hat(a))
        return self.latent.streams(a), pixels

    def decode_symbols(self, encoded: Encoded, height: int, width: int) -> dict[str, Tensor]:
        """The decoded symbols of an image of `height` x `width` pixels (multiples of `stride`)."""
        return self.latent.decode_symbols(encoded, height // LATENT_STRIDE, width // LATENT_STRIDE)

    @torch.no_grad()
    def synthesise(self, y_hat: Tensor, fast: bool = False) -> Tensor:
        """8-bit pixels from y_hat, `synthesis_tile` x `synthesis_tile` latents at a time (memory per tile).

        `fast`: g_s in float32 (`lic.codecs.synthesis`): a few pixels per million can differ
        from the exact float64 decode by a grey level, and from one machine to another."""
        if fast and self._fast is None:
            self._fast = Synthesis(self.g_s, False, self.device)
        synthesis = self._fast if fast else self._exact
        return run_tiled(lambda t: synthesis(t.to(self.device)), y_hat, 1, LATENT_STRIDE, self.synthesis_tile,
                         TRANSFORM_HALO, finish=lambda t: to_pixels(t).cpu())

    def decode(self, encoded: Encoded, height: int, width: int, fast: bool = False) -> Tensor:
        return self.synthesise(self.latent.decode(encoded, height // LATENT_STRIDE, width // LATENT_STRIDE), fast)
