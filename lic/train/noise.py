"""Training's quantisation noise as a function of (seed, step) and the global batch.

CompressAI's entropy models add uniform noise drawn from the process's global RNG. Under
data parallelism every rank would then draw the noise of the *first* batch share (same seed)
and N processes would not follow one process's trajectory. Here every rank draws the noise of
the whole global batch from a generator seeded by the step and keeps its own share, so
1 process and N processes (and a run resumed with another N) add the same noise to the
same crop.
"""

from __future__ import annotations

import torch
from compressai.entropy_models.entropy_models import EntropyModel
from torch import Tensor

#: Where the batch lies in what each entropy model passes to `quantize`: GaussianConditional
#: gets [B, C, H, W]; EntropyBottleneck flattens to [C, 1, B*H*W] with B outermost.
_BATCH_DIM = {"GaussianConditional": 0, "EntropyBottleneck": -1}


class GlobalBatchNoise:
    def __init__(self, seed: int, part: tuple[int, int], device: torch.device) -> None:
        self.seed = seed
        self.rank, self.parts = part
        self.generator = torch.Generator(device)

    def install(self, model: torch.nn.Module) -> None:
        """Routes the noise of every entropy model in `model` through this generator."""
        for module in model.modules():
            if isinstance(module, EntropyModel):
                module.quantize = self._quantizer(module, _BATCH_DIM[type(module).__name__])

    def start_step(self, step: int) -> None:
        self.generator.manual_seed(self.seed * 1_000_003 + step)

    def _quantizer(self, module: EntropyModel, batch_dim: int):
        original = type(module).quantize

        def quantize(inputs: Tensor, mode: str, means: Tensor | None = None) -> Tensor:
            if mode != "noise":
                return original(module, inputs, mode, means)
            shape = list(inputs.shape)
            shape[batch_dim] *= self.parts
            noise = torch.empty(shape, dtype=inputs.dtype, device=inputs.device)
            noise.uniform_(-0.5, 0.5, generator=self.generator)
            return inputs + noise.chunk(self.parts, dim=batch_dim)[self.rank]

        return quantize
