"""Mean-scale hyperprior codec (Minnen, Ballé & Toderici 2018, without the context model).

Encoder:  x --g_a--> y --h_a--> z
Bitstream: z with a learned factorized prior (one table per channel), then y with Gaussians
           whose mean and scale come from the hyper-synthesis h_s(z_hat).
Decoder:  z_hat --h_s--> (scale index, mean) --> y_hat --g_s--> x_hat

How decoding stays identical on every machine (the scheme the tests check):

1. Probabilities are integer CDF tables fixed at export (`lic.entropy.tables`): one per z
   channel, and one per entry of a fixed table of 64 log-spaced scales from 0.11 to 256.
2. h_s is trained to output, per element of y, a *scale index* t (scale = 0.11 * exp(Δ t),
   Δ the table's log step) and a mean. At export it becomes an integer network
   (`lic.entropy.integer_net`) whose outputs are the index itself and the mean in units of
   1/16; it reads z_hat in units of 1/16 (the z medians are snapped to that grid). Its
   arithmetic is exact, so encoder and decoder derive the same indices and means bit for bit.
3. y is coded as round(y - mean) with table `clip(index, 0, 63)`; the decoder adds the mean
   back. A 4-byte digest of all indices and means goes in the file header: if a decoder
   ever derives different ones, it stops with a clear error instead of producing garbage.
4. Rate control may code y in steps of Δ = 2**(k/64) instead of 1 (k, the step code, goes in
   the header): round((y - mean) / Δ) with the table `round(k/64 · ln 2 / log step)` places
   lower (the Gaussians of scale / Δ, to within half a table step). Δ is a 24-bit binary
   fraction and the shift an integer, so the decoder derives both exactly.
5. g_s runs in float64. Its rounding errors (~1e-16) only matter if a pixel lies within
   ~1e-13 of a rounding boundary, so decoded pixels match across machines in practice.
   (`decode(..., fast=True)` runs g_s in float32 instead; entropy decoding is the same
   exact integer arithmetic, so only pixel values move, never the decoded symbols.)

Training uses the float network (`MeanScaleHyperprior`) with CompressAI's layers and
likelihoods; `export` turns a trained network into the tensors stored in a model file, and
`HyperpriorCodec` runs those tensors. The transforms' convolution weights are stored either
in float16 or, with mixed precision (`lic.quantization`, `lic quantize`), as per-channel
integers of 4 to 8 bits chosen per layer; h_s's integer weights then use the chosen widths
too. Integer weights are widened to float once, at load, so coding speed does not change.
"""

from __future__ import annotations

import copy
import hashlib
import math
from typing import ClassVar, Mapping

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
import constriction
from torch import Tensor, nn

from lic.codecs.base import Encoded, to_input, to_pixels
from lic.codecs.synthesis import Synthesis
from lic.codecs.tiling import run_tiled
from lic.entropy import CdfTables, decode_symbols, encode_symbols
from lic.entropy.coder import check_consumed, stream_decoder
from lic.entropy.integer_net import IntegerNet, quantize_network
from lic.errors import DeterminismError, FormatError, ModelError
from lic.quantization.gptq import quantize_layer
from lic.quantization.weights import float_state

SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
SCALE_LOG_STEP = math.log(SCALE_MAX / SCALE_MIN) / (SCALE_LEVELS - 1)
MEAN_STEP = 1 / 16  # grid of the means h_s outputs
Z_STEP = 1 / 16  # grid of z_hat as h_s reads it
Z_INPUT_BOUND = 2**15  # |z_hat / Z_STEP| is clipped here before h_s (never reached in practice)
TRANSFORM_HALO = 2  # latents: g_a's and g_s's receptive fields reach 1.9 latents beyond a latent's own pixels
HYPER_HALO = 2  # z cells: an h_s output reads z up to 1 cell before and 2 cells after its own
STEP_DIVISIONS = 64  # quantisation step codes per octave of step size (rate control)
MAX_STEP = 64  # |step code|: steps from 1/2 to 2, enough to cover the gap between two qualities


def step_size(step: int) -> float:
    """Δ for a quantisation step code: 2**(step/64) rounded to a multiple of 2**-24 (exact on
    every machine, as the libm's last bit of 2**x is not)."""
    return round(2 ** (step / STEP_DIVISIONS) * 2**24) / 2**24


def table_shift(step: int) -> int:
    """How many scale-table entries lower the tables of y / Δ are (Δ's scale-table steps)."""
    return round(step / STEP_DIVISIONS * math.log(2) / SCALE_LOG_STEP)


def shifted(index: Tensor, step: int) -> Tensor:
    """Table indices for y / Δ: `index` moved down by `table_shift(step)`, kept in the table."""
    if not step:
        return index
    return (index.to(torch.int16) - table_shift(step)).clamp_(0, SCALE_LEVELS - 1).to(torch.uint8)


def scale_table() -> Tensor:
    return torch.exp(math.log(SCALE_MIN) + SCALE_LOG_STEP * torch.arange(SCALE_LEVELS, dtype=torch.float64))


class MeanScaleHyperprior(nn.Module):
    """The float network that is trained; `export` makes the codec from it."""

    def __init__(self, N: int = 128, M: int = 192) -> None:
        super().__init__()
        self.N, self.M = N, M
        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
        )
        self.g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
        )
        self.h_a = nn.Sequential(
            conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N),
        )
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


#: Every convolution of the transforms, by state-dict name: what mixed precision chooses bits for.
QUANTIZABLE_LAYERS = (
    "g_a.0", "g_a.2", "g_a.4", "g_a.6", "h_a.0", "h_a.2", "h_a.4",
    "h_s.0", "h_s.2", "h_s.4", "g_s.0", "g_s.2", "g_s.4", "g_s.6",
)
_H_S_LAYERS = ("h_s.0", "h_s.2", "h_s.4")


def _transform_weights(
    model: MeanScaleHyperprior, weight_bits: Mapping[str, int] | None, moments: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """g_a, h_a, g_s: conv weights in float16 (`weight_bits` None) or per-channel integers of
    the given widths (GPTQ-rounded for layers with input `moments`); biases in float16; GDN
    parameters in float32, or float16 in quantized files."""
    out = {}
    for part in ("g_a", "h_a", "g_s"):
        module = getattr(model, part)
        for name, value in module.state_dict().items():
            key = f"{part}.{name}"
            layer = key.rsplit(".", 1)[0]
            if weight_bits is not None and name.endswith(".weight") and layer in weight_bits:
                conv_layer = module[int(name.split(".")[0])]
                out.update(quantize_layer(conv_layer, weight_bits[layer], moments.get(layer)).to_tensors(key))
                continue
            # GDN parameters stay float32 in float16 exports (the reference the quantized files
            # are measured against); quantized files store them as float16 too: 0.2 MB less,
            # and q4/q8 on four Kodak images moved by at most 0.004 dB and 4 bytes.
            is_gdn_param = name.endswith(("beta", "gamma", "pedestal"))
            dtype = torch.float32 if is_gdn_param and weight_bits is None else torch.float16
            out[key] = value.detach().to("cpu", dtype).contiguous()
    return out


@torch.no_grad()
def export(
    model: MeanScaleHyperprior,
    calibration: Tensor,
    weight_bits: Mapping[str, int] | None = None,
    moments: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """The tensors of a model file: transforms, integer h_s, integer CDF tables.

    calibration: a few images [B, 3, H, W] in [0, 1] to calibrate h_s's integer ranges.
    weight_bits: bit width per layer of `QUANTIZABLE_LAYERS` (mixed precision); None keeps
    float16 transforms and int8 h_s. h_s layers not named stay at 8 bits.
    moments: per layer, the input second moments that GPTQ rounding uses (`lic.quantization.gptq`).
    """
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()
    eb = model.entropy_bottleneck
    eb.quantiles[:, :, 1] = torch.round(eb.quantiles[:, :, 1] / Z_STEP) * Z_STEP
    eb.update(force=True)
    gc = model.gaussian_conditional
    gc.update_scale_table(scale_table().float(), force=True)

    h_s = integer_h_s(model, calibration_z_hat(model, calibration), weight_bits or {})
    tensors = _transform_weights(model, weight_bits, moments or {})
    tensors.update(h_s.to_tensors("h_s"))
    tensors.update(CdfTables.from_compressai(eb).to_tensors("z_tables"))
    tensors.update(CdfTables.from_compressai(gc).to_tensors("y_tables"))
    tensors["z_medians16"] = torch.round(eb.quantiles[:, 0, 1] / Z_STEP).to(torch.int64)
    return tensors


@torch.no_grad()
def calibration_z_hat(model: MeanScaleHyperprior, calibration: Tensor) -> Tensor:
    """The z_hat (on the medians' Z_STEP grid, as the codec rounds it) of `calibration` images
    [B, 3, H, W] in [0, 1]: what the integer h_s's hidden ranges are calibrated on."""
    medians = (torch.round(model.entropy_bottleneck.quantiles[:, 0, 1] / Z_STEP) * Z_STEP).view(1, -1, 1, 1)
    z = model.h_a(model.g_a(calibration.float()))
    return torch.round(z - medians) + medians


def integer_h_s(model: MeanScaleHyperprior, z_hat: Tensor, weight_bits: Mapping[str, int]) -> IntegerNet:
    """h_s as the exact integer network (h_s layers not in `weight_bits` at 8 bits), calibrated
    on `z_hat` (`calibration_z_hat`)."""
    out_step = torch.cat([torch.ones(model.M), torch.full((model.M,), MEAN_STEP)]).double()
    bits = [weight_bits.get(name, 8) for name in _H_S_LAYERS]
    return quantize_network(model.h_s, z_hat, Z_STEP, out_step, Z_INPUT_BOUND, weight_bits=bits)


def entropy_parameters_from(out: Tensor, M: int) -> tuple[Tensor, Tensor]:
    """The integer h_s output -> (scale-table index per y element, uint8; means)."""
    return out[:, :M].clamp(0, SCALE_LEVELS - 1).to(torch.uint8), out[:, M:] * MEAN_STEP


class HyperpriorCodec:
    """Runs an exported hyperprior: `encode` to streams, `decode` back to pixels."""

    family: ClassVar[str] = "hyperprior"
    has_fast_path: ClassVar[bool] = True  # decode(..., fast=True): g_s in float32
    stride = 64
    tile = 32  # latents per tile side in g_a: 512x512 pixels
    synthesis_tile = 48  # latents per tile side in g_s: 768x768 pixels, ~0.4 GB of float64 activations (N=128)
    hyper_tile = 16  # z cells per tile side in h_s: 1024x1024 pixels, ~0.2 GB of float64 activations

    def __init__(self, tensors: dict[str, Tensor], config: dict, device: torch.device) -> None:
        N, M = int(config["N"]), int(config["M"])
        self.M = M
        self.quality = int(config["quality"])
        # The rate-distortion weight the model was trained for (loss λ·255²·MSE + bpp):
        # what `lic.codecs.refine` optimises a file's latents for.
        self.lmbda = float(config["lambda"]) if "lambda" in config else None
        self.device = device
        net = MeanScaleHyperprior(N, M)
        for part in ("g_a", "h_a", "g_s"):  # integer weights are widened once, here
            getattr(net, part).load_state_dict(float_state(tensors, part))
        self.g_a = net.g_a.to(device).eval()
        self.h_a = net.h_a.to(device).eval()
        self.g_s = net.g_s.to(device, torch.float64).eval()  # as trained; decoding runs `_exact` or `_fast`
        self._exact = Synthesis(net.g_s, True, device)
        self._fast: Synthesis | None = None  # made when first asked for
        self.h_s = IntegerNet.from_tensors(tensors, "h_s")
        self.z_tables = CdfTables.from_tensors(tensors, "z_tables")
        self.y_tables = CdfTables.from_tensors(tensors, "y_tables")
        self.z_medians16 = tensors["z_medians16"].view(1, -1, 1, 1).to(torch.float64)

    def for_quality(self, quality: int) -> "HyperpriorCodec":
        """A hyperprior file codes one quality; the zoo has a file per quality."""
        if quality != self.quality:
            raise ModelError(f"this hyperprior model codes quality {self.quality}, not {quality}")
        return self

    def _entropy_parameters(self, z_symbols: Tensor) -> tuple[Tensor, Tensor, bytes]:
        """Exact integer h_s: table index per y element (uint8), means, and their digest.

        h_s runs tile by tile: its float64 im2col buffers for a whole 24-megapixel image
        were 2.5 GB. Its arithmetic is exact, so the tiles give the whole-image integers.
        The digest (of the int16 indices, then the int64 means in units of 1/16) is fed one
        channel at a time rather than from whole-image copies."""
        z16 = z_symbols.to(torch.float64) / Z_STEP + self.z_medians16
        out = run_tiled(self.h_s, z16, 1, 4, self.hyper_tile, HYPER_HALO)
        index, means = entropy_parameters_from(out, self.M)
        means16 = out[0, self.M :]
        digest = hashlib.blake2b(digest_size=4)
        for channel in index[0]:
            digest.update(channel.to(torch.int16).numpy().astype("<i2", copy=False))
        for channel in means16:
            digest.update(channel.to(torch.int64).numpy().astype("<i8", copy=False))
        return index, means, digest.digest()

    @torch.no_grad()
    def latents(self, x: Tensor) -> Tensor:
        """g_a's y for x (float32, on the CPU): what `analyse` quantises, or what
        `lic.codecs.refine` starts from."""
        return run_tiled(lambda t: self.g_a(to_input(t).to(self.device)), x, 16, 1, self.tile, TRANSFORM_HALO)

    def analyse(self, x: Tensor, step: int = 0) -> dict:
        """Everything the encoder decides: z and y symbols, table indices, means."""
        return self.analyse_latents(self.latents(x), step)

    @torch.no_grad()
    def analyse_latents(self, y: Tensor, step: int = 0) -> dict:
        """The symbols, table indices, means and digest for latents y: z = h_a(y) rounded,
        then y rounded against the means the integer h_s derives from z."""
        z = self.h_a(y.to(self.device)).to("cpu", torch.float64)
        return self.analyse_symbols(torch.round(z - self.z_medians16 * Z_STEP), y, step)

    @torch.no_grad()
    def analyse_symbols(self, z_symbols: Tensor, y: Tensor, step: int = 0) -> dict:
        """The analysis for given z symbols: y rounded against the means they give, in steps of
        `step_size(step)` (rate control) with the tables shifted to match."""
        index, means, digest = self._entropy_parameters(z_symbols)
        return self.quantise(y, {"z": z_symbols, "index": index, "means": means, "digest": digest}, step)

    @staticmethod
    def quantise(y: Tensor, base: dict, step: int) -> dict:
        """y's symbols for the entropy parameters of `base` (an analysis at step 0, or its
        z, index, means and digest) at quantisation step code `step`."""
        y_symbols = y.to("cpu", torch.float64, copy=True).sub_(base["means"])
        if step:
            y_symbols.div_(step_size(step))
        y_symbols.round_()
        return {**base, "y": y_symbols, "index": shifted(base["index"], step), "step": step}

    @staticmethod
    def latents_hat(a: dict) -> Tensor:
        """The y_hat g_s decodes from an analysis (or decoded symbols)."""
        step = a.get("step", 0)
        return a["y"] * step_size(step) + a["means"] if step else a["y"] + a["means"]

    def encode(self, x: Tensor, step: int = 0) -> Encoded:
        """The streams for x; y in steps of `step_size(step)` (rate control) if step is not 0."""
        if abs(step) > MAX_STEP:
            raise ValueError(f"quantisation step codes are -{MAX_STEP}..{MAX_STEP}, not {step}")
        return self._streams(self.analyse(x, step))

    def streams(self, a: dict[str, Tensor]) -> Encoded:
        """The streams of an analysis (`analyse`, `analyse_latents` or a refined one); `a` is
        left as it was."""
        return self._streams(dict(a))

    def encode_reconstruct(self, x: Tensor) -> tuple[Encoded, Tensor]:
        """The streams and the 8-bit pixels a decoder will produce from them (closed-loop video
        coding predicts from these, not from the source)."""
        a = self.analyse(x)
        pixels = self.synthesise(self.latents_hat(a))
        return self._streams(a), pixels

    def _streams(self, a: dict[str, Tensor]) -> Encoded:
        del a["means"]  # y is coded relative to them; not needed any more
        channels = torch.arange(a["z"].shape[1]).view(1, -1, 1, 1).expand_as(a["z"])
        z_stream = _range_coded(a.pop("z"), channels, self.z_tables)
        return Encoded([z_stream, _range_coded(a.pop("y"), a.pop("index"), self.y_tables)], a["digest"],
                       a.get("step", 0))

    @torch.no_grad()
    def decode_symbols(self, encoded: Encoded, height: int, width: int) -> dict[str, Tensor]:
        if len(encoded.streams) != 2 or any(len(s) % 4 for s in encoded.streams):
            raise FormatError("hyperprior payload must hold two streams of 32-bit words")
        z_shape = (1, len(self.z_tables), height // 64, width // 64)
        channels = np.broadcast_to(np.arange(z_shape[1]).reshape(1, -1, 1, 1), z_shape)
        z = _decode_stream(encoded.streams[0], channels, self.z_tables, "z stream")
        z_symbols = torch.from_numpy(z).to(torch.float64)
        index, means, digest = self._entropy_parameters(z_symbols)
        if digest != encoded.check:
            raise DeterminismError(
                "this machine derived different entropy parameters than the encoder "
                "(hyper-decoder digest mismatch); the file is damaged or cannot be decoded here"
            )
        if abs(encoded.step) > MAX_STEP:
            raise FormatError(f"the file header is corrupted (quantisation step code {encoded.step})")
        index = shifted(index, encoded.step)
        y = _decode_stream(encoded.streams[1], index.numpy(), self.y_tables, "y stream")
        return {"z": z_symbols, "y": torch.from_numpy(y).to(torch.float64), "index": index, "means": means,
                "step": encoded.step}

    @torch.no_grad()
    def synthesise(self, y_hat: Tensor, fast: bool = False) -> Tensor:
        """8-bit pixels from y_hat, `synthesis_tile` x `synthesis_tile` latents at a time (memory per tile).

        `fast`: g_s in float32 (`lic.codecs.synthesis`): a few pixels per million can differ
        from the exact float64 decode by a grey level, and from one machine to another."""
        if fast and self._fast is None:
            self._fast = Synthesis(self.g_s, False, self.device)
        synthesis = self._fast if fast else self._exact
        return run_tiled(lambda t: synthesis(t.to(self.device)), y_hat, 1, 16, self.synthesis_tile,
                         TRANSFORM_HALO, finish=lambda t: to_pixels(t).cpu())

    def decode(self, encoded: Encoded, height: int, width: int, fast: bool = False) -> Tensor:
        s = self.decode_symbols(encoded, height, width)
        y = s.pop("y")
        if s["step"]:
            y.mul_(step_size(s["step"]))
        return self.synthesise(y.add_(s.pop("means")), fast)  # in place: one latent-sized array less


def _range_coded(values: Tensor, table_ids: Tensor, tables: CdfTables) -> bytes:
    """One stream of `values` (integer-valued), each coded with table `table_ids[i]`."""
    symbols = values.to(torch.int64).numpy()
    del values  # the caller passes its only reference: a latent-sized array less at the peak
    encoder = constriction.stream.queue.RangeEncoder()
    encode_symbols(encoder, symbols, table_ids.numpy(), tables)
    return encoder.get_compressed().astype("<u4").tobytes()


def _decode_stream(stream: bytes, table_ids: np.ndarray, tables: CdfTables, what: str) -> np.ndarray:
    """The values of one stream, which must hold exactly them (`check_consumed`)."""
    decoder = stream_decoder(stream, what)
    values = decode_symbols(decoder, table_ids, tables)
    check_consumed(decoder, stream, values.size, what)
    return values
