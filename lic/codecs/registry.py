"""The one list of lic's codec families, each declared in one place.

A family names, as "module:attribute" strings: the codec that runs its model files, the
training config (its fields are `lic train`'s options for the family; the config's module
has `train(config)`, and the config's `model_config()` is what the model file records), the
export module (`float_model(state, quality, name)`, `export_model(model, images)` and
`CALIBRATION_SIDE`, the least side of a calibration image: `lic export`), the layers `lic
quantize` may choose widths for, and the qualities the golden files pin. The model zoo, `lic train`, `lic export`, `lic quantize`, `lic models` and the
golden-file maker read this table; the byte a file records for a family is a format matter
(`lic.codec_ids`). Adding a family is its modules plus one `register` (or a line below).

Modules are imported on first use, so that reading a header or listing families never pays
for importing a network.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lic.errors import ModelError


@dataclass(frozen=True)
class Family:
    name: str  # the model file's "family"; what `--model` of `lic train` and `lic export` take
    codec: str  # "module:Class" that runs exported model files of this family
    train_config: str  # "module:Class": the training options; the module's `train(config)` runs them
    export: str | None = None  # module with `float_model` and `export_model`; None: no `lic export`
    quantizable: str | None = None  # "module:NAME" of the layers `lic quantize` chooses widths for
    goldens: tuple[tuple[int, int], ...] = ()  # (quality, quantisation step code) of each golden file

    def codec_class(self) -> Any:
        return _attribute(self.codec)

    def trainer(self) -> tuple[type, Any]:
        """(config dataclass, train function) of this family."""
        config = _attribute(self.train_config)
        return config, importlib.import_module(config.__module__).train

    def exporter(self) -> ModuleType:
        if self.export is None:
            raise ModelError(f"codec family '{self.name}' has no `lic export` (its trainer writes model files)")
        return importlib.import_module(self.export)

    def quantizable_layers(self) -> tuple[str, ...]:
        return tuple(_attribute(self.quantizable)) if self.quantizable else ()


_FAMILIES: dict[str, Family] = {}


def register(f: Family) -> Family:
    """Adds family `f` (a ValueError if its name is taken)."""
    if f.name in _FAMILIES:
        raise ValueError(f"codec family '{f.name}' is registered already")
    _FAMILIES[f.name] = f
    return f


def unregister(name: str) -> None:
    """Removes a family `register` added (tests that register a toy family)."""
    del _FAMILIES[name]


register(Family("hyperprior", "lic.codecs.hyperprior:HyperpriorCodec", "lic.train.hyperprior:HyperpriorTrainConfig",
                export="lic.export.hyperprior", quantizable="lic.codecs.hyperprior_net:QUANTIZABLE_LAYERS",
                goldens=((1, 0), (6, 0), (3, -21))))
register(Family("vq", "lic.codecs.vq:VQCodec", "lic.train.vq:VQTrainConfig", goldens=((2, 0), (6, 0))))
register(Family("video", "lic.video.codec:VideoCodec", "lic.train.video:VideoTrainConfig"))


def families() -> tuple[Family, ...]:
    return tuple(_FAMILIES.values())


def family(name: str) -> Family:
    """The family called `name`, or a ModelError naming the ones this lic has."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ModelError(f"no codec family '{name}' in this version of lic ({', '.join(_FAMILIES)})") from None


def names() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def _attribute(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)
