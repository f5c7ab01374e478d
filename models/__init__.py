"""The model zoo: the weights that ship with lic, and how any model file is found and loaded.

A model file is a safetensors file (no pickle) whose metadata key "lic" holds a JSON config:
its name (e.g. "hyperprior"), codec family, quality and architecture. Files in this folder
are the shipped zoo; `--model PATH` loads any other file of the same form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError, safe_open

from lic.errors import ModelError
from lic.files import give_default_permissions

if TYPE_CHECKING:
    import torch

ZOO_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelFile:
    path: Path
    name: str
    family: str
    quality: int
    config: dict
    hash: bytes  # first 4 bytes of the file's SHA-256: what a .lic header records

    @property
    def qualities(self) -> tuple[int, ...]:
        """The qualities this file codes: its own, or every rate level it holds (vq)."""
        levels = self.config.get("levels")
        return tuple(sorted(int(q) for q in levels)) if levels else (self.quality,)


def read_model_file(path: "str | Path") -> ModelFile:
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:  # metadata only: `lic models` needs no torch
            meta = f.metadata() or {}
        config = json.loads(meta["lic"])
        name, family, quality = config["name"], config["family"], int(config["quality"])
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except (SafetensorError, OSError, KeyError, ValueError, TypeError):
        raise ModelError(f"{path}: not a lic model file") from None
    digest = hashlib.sha256(path.read_bytes()).digest()[:4]
    return ModelFile(path, name, family, quality, config, digest)


def save_model_file(path: "str | Path", tensors: dict[str, torch.Tensor], config: dict) -> ModelFile:
    from safetensors.torch import save_file

    for key in ("name", "family", "quality"):
        if key not in config:
            raise ValueError(f"model config needs '{key}'")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"lic": json.dumps(config, sort_keys=True)})
    give_default_permissions(path)
    return read_model_file(path)


@lru_cache(maxsize=1)
def available() -> tuple[ModelFile, ...]:
    """The shipped models, by name then quality."""
    files = [read_model_file(p) for p in sorted(ZOO_DIR.glob("*.safetensors"))]
    return tuple(sorted(files, key=lambda m: (m.name, m.quality)))


def find(model: str, quality: int) -> ModelFile:
    """The file that codes `quality`; `model` is a zoo name or a path to a model file."""
    if model.endswith(".safetensors") or Path(model).is_file():
        matches = [read_model_file(model)]
    else:
        matches = [m for m in available() if m.name == model]
    if not matches:
        names = sorted({m.name for m in available()}) or ["none installed"]
        raise ModelError(f"unknown model '{model}' (available: {', '.join(names)})")
    for m in matches:
        if quality in m.qualities:
            return m
    qualities = ", ".join(str(q) for m in matches for q in m.qualities)
    raise ModelError(f"model '{model}' has no quality {quality} (available: {qualities})")


def find_by_hash(model_hash: bytes) -> ModelFile | None:
    for m in available():
        if m.hash == model_hash:
            return m
    return None


def load_codec(path: Path, device: str, quality: int | None = None):
    """The runnable codec for a model file at `quality` (default: the file's own)."""
    codec = _load_codec(Path(path), device)
    return codec if quality is None else codec.for_quality(quality)


@lru_cache(maxsize=8)
def _load_codec(path: Path, device: str):
    """Cached: loading costs more than coding a small image."""
    import torch
    from safetensors.torch import load_file

    from lic.codecs import codec_class

    model = read_model_file(path)
    tensors = load_file(str(path))
    try:
        return codec_class(model.family)(tensors, model.config, torch.device(device))
    except torch.cuda.OutOfMemoryError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        # A config or tensor the codec needs is missing or malformed (load_state_dict says
        # so with a RuntimeError over many lines; its first line names the part).
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{path}: not a complete {model.family} model ({detail})") from None
