"""What `lic eval` can run: the classic baselines and lic's own models, behind one interface.

`--codec lic-<model>` evaluates a lic model at every quality it has; <model> is a zoo name
(`lic models`), a model file, or a folder of model files (e.g. one exported per quality
while training). `lic-<model>@effortN` encodes at `--effort N` (`lic.codecs.refine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from lic import models
from lic.errors import InputError, ModelError
from lic.eval.baselines import BASELINES

LIC_PREFIX = "lic-"
EFFORT_SUFFIX = "@effort"


class Codec(Protocol):
    """A codec the harness can sweep. Arrays are uint8 H x W x 3 RGB."""

    name: str
    description: str
    qualities: tuple[int, ...]

    def unavailable(self) -> str | None:
        """Why this machine cannot run the codec, or None."""

    def prepare(self, quality: int) -> None:
        """Untimed set-up before the first image of a quality (e.g. loading a model)."""

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        """The complete file, container and headers included: its size is the rate."""

    def decode(self, data: bytes) -> np.ndarray:
        """The decoded image, same size as the original."""


@dataclass(frozen=True)
class LicCodec:
    """A lic model through the public API: `lic.compress` writes the real .lic file."""

    name: str
    files: tuple[models.ModelFile, ...]  # by quality; a file may code several (vq levels)
    from_zoo: bool
    device: str = "cpu"
    effort: int = 0

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(q for m in self.files for q in m.qualities)

    @property
    def description(self) -> str:
        m = self.files[0]
        where = "zoo" if self.from_zoo else str(m.path.parent)
        effort = f", effort {self.effort}" if self.effort else ""
        return f"lic {m.family} model '{m.name}' ({where}){effort}, .lic files, {self.device}"

    def unavailable(self) -> str | None:
        return None

    def model_file(self, quality: int) -> models.ModelFile:
        return next(m for m in self.files if quality in m.qualities)

    def _model(self, quality: int) -> str:
        return self.model_file(quality).name if self.from_zoo else str(self.model_file(quality).path)

    def prepare(self, quality: int) -> None:
        """Loads the model, so that loading is not timed as encoding."""
        from lic.codecs.base import to_device

        models.load_codec(self.model_file(quality).path, str(to_device(self.device)), quality)

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        import lic

        return lic.compress(rgb, quality=quality, model=self._model(quality), device=self.device, effort=self.effort)

    def decode(self, data: bytes) -> np.ndarray:
        import lic

        quality = lic.read_header(data).quality
        return np.asarray(lic.decompress(data, model=self._model(quality), device=self.device).convert("RGB"))


def _lic_codec(spec: str, device: str) -> LicCodec:
    spec, _, effort = spec.partition(EFFORT_SUFFIX)
    if effort and not (effort.isdigit() and 0 <= int(effort) <= 3):
        raise InputError(f"'{EFFORT_SUFFIX}{effort}': the effort is 0..3")
    suffix = f"{EFFORT_SUFFIX}{effort}" if effort else ""
    path = Path(spec)
    from_zoo = not (spec.endswith(".safetensors") or path.exists())
    if from_zoo:
        found = [m for m in models.available() if m.name == spec]
        if not found:
            names = sorted({m.name for m in models.available()}) or ["none installed"]
            raise ModelError(f"unknown model '{spec}' (zoo: {', '.join(names)}; or give a model file or folder)")
    else:
        files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
        if not files:
            raise InputError(f"{path}: no .safetensors model files in this folder")
        found = [models.read_model_file(f) for f in files]
    names = sorted({m.name for m in found})
    if len(names) > 1:
        raise InputError(f"{spec}: holds models of several names ({', '.join(names)}); give one model")
    qualities = [q for m in found for q in m.qualities]
    if len(set(qualities)) < len(qualities):
        raise InputError(f"{spec}: several model files have the same quality")
    return LicCodec(LIC_PREFIX + names[0] + suffix, tuple(sorted(found, key=lambda m: m.quality)), from_zoo, device,
                    int(effort or 0))


def resolve(name: str, device: str = "cpu") -> Codec:
    """The codec called `name`: a classic baseline, or lic-<model>."""
    if name.startswith(LIC_PREFIX):
        return _lic_codec(name[len(LIC_PREFIX):], device)
    return runnable(name, BASELINES, f"classic: {', '.join(BASELINES)}; or lic-<model>")


def runnable(name: str, known: dict, choices: str):
    """`known[name]` if this machine can run it; `choices` tells the user what the names are."""
    if name not in known:
        raise InputError(f"unknown codec '{name}' ({choices})")
    reason = known[name].unavailable()
    if reason:
        raise InputError(f"codec {name} is unavailable on this machine: {reason}")
    return known[name]
