"""What every training loop shares: device choice, checkpoints, logs, time budget."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lic.errors import InputError
from lic.files import give_default_permissions



@dataclass(kw_only=True)
class RunConfig:
    """What every training run takes besides its family's model and loss options."""

    data: list[str]
    out: str
    steps: int
    batch: int
    crop: int = 256
    lr: float
    decay_at: float = 0.9  # lr x0.1 after this fraction of the steps
    val_dir: str | None = None
    val_images: int = 4
    val_every: int
    save_every: int = 500
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    init: str | None = None  # weights (checkpoint.pt or weights.safetensors) to start from
    name: str
    command: str = field(default_factory=lambda: " ".join(sys.argv))
    data_parallel: ClassVar[bool] = False  # whether `train` runs as one rank of a torchrun world

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(name)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when asked; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def place(device: torch.device, *modules: torch.nn.Module) -> None:
    """Moves the networks to `device`; on CUDA channels_last and cuDNN autotuning (faster convs)."""
    for module in modules:
        module.to(device)
        if device.type == "cuda":
            module.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def restore(ckpt_path: Path, init: str | None, device: torch.device,
            models: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Starts a run: from `ckpt_path` if it exists (resume), else the first model from `init`
    weights, else as constructed; then puts the models on `device`.

    Optimiser state is loaded only after `place`: `Optimizer.load_state_dict` moves each
    state tensor to its parameter's device, so Adam's moments land on the GPU with the model
    (loaded before, they stayed on the CPU and the first CUDA `opt.step()` failed).
    Returns the checkpoint (step, elapsed, ...) or {} for a fresh run.
    """
    state: dict = {}
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        for key, model in models.items():
            model.load_state_dict(state[key])
    elif init:
        next(iter(models.values())).load_state_dict(load_weights(Path(init)))
    place(device, *models.values())
    if state:
        for key, optimizer in optimizers.items():
            optimizer.load_state_dict(state[key])
        torch.set_rng_state(state["torch_rng"])
    return state


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: a run killed while saving keeps its previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    # weights_only=True: a restricted unpickler that loads tensors and plain containers only.
    return torch.load(path, map_location="cpu", weights_only=True)


def carry_dtype(tensor: torch.Tensor, is_parameter: bool) -> torch.dtype:
    """float16 for parameters that float16 holds faithfully (in range, round trip within 1e-3
    of the tensor's norm); float32 for buffers (likelihood lower bounds of 1e-9 and GDN
    pedestals of 2**-36 become 0 in float16, and training then meets log2(0)) and for
    parameters that float16 would distort; other dtypes unchanged."""
    if not tensor.is_floating_point():
        return tensor.dtype
    if not is_parameter:
        return torch.float32
    t = tensor.detach().float()
    if t.numel() == 0 or t.abs().max() > torch.finfo(torch.float16).max:
        return torch.float32
    error = torch.linalg.vector_norm(t.half().float() - t)
    return torch.float16 if error <= 1e-3 * torch.linalg.vector_norm(t) else torch.float32


def carry_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state as small as it can be carried between machines: float16 parameters,
    float32 buffers (see `carry_dtype`)."""
    parameters = {name for name, _ in model.named_parameters()}
    return {k: v.detach().to("cpu", carry_dtype(v, k in parameters)).contiguous()
            for k, v in model.state_dict().items()}


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """The weights alone in carry form (`carry_state`; 14 MB for N=128, M=192): small enough
    to move between GPU sessions, which cannot move a full checkpoint with its optimiser state."""
    tmp = path.with_suffix(".tmp")
    save_file(carry_state(model), str(tmp))
    give_default_permissions(tmp)
    os.replace(tmp, path)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Model weights from a `checkpoint.pt` or a `.safetensors` (carry form or int8 + qscale)."""
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        # Weights shared as int8 with a float scale under `<name>.qscale` read as int8 * qscale.
        sd = load_file(str(path))
        return {k: v.float() * sd[f"{k}.qscale"] if f"{k}.qscale" in sd else (v.float() if v.is_floating_point() else v)
                for k, v in sd.items() if not k.endswith(".qscale")}
    return load_checkpoint(path)["model"]


def apply_lr(base: float, step: int, steps: int, decay_at: float, *optimizers: torch.optim.Optimizer) -> float:
    """Sets and returns the learning rate of `step`: `base`, x0.1 from `decay_at * steps` on."""
    lr = base * (0.1 if step >= decay_at * steps else 1.0)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr
    return lr


class Throughput:
    """Images per second since the last `reset` (what the logs and the ladder's planner read)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.start, self.images = time.monotonic(), 0

    def add(self, images: int) -> None:
        self.images += images

    @property
    def rate(self) -> float:
        return self.images / max(time.monotonic() - self.start, 1e-9)


class JsonLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class Budget:
    """Wall-clock budget across resumed runs: `elapsed` counts earlier sessions too."""

    def __init__(self, max_minutes: float | None, elapsed: float = 0.0) -> None:
        self.max_seconds = None if max_minutes is None else max_minutes * 60
        self.start = time.monotonic() - elapsed
        self.session_start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def session_over(self) -> bool:
        """True once this session has used its --max-minutes."""
        return self.max_seconds is not None and time.monotonic() - self.session_start >= self.max_seconds
