"""The one list of lic's codec families.

Everything that must know the families reads this table: the model zoo (which class runs a
model file), `lic train` (which config and loop train a family) and the CLI's help. The byte
that files record for a family is a format matter: `lic.codec_ids`, which the containers read.

Modules are named as strings and imported on first use, so that reading a header or listing
families never pays for importing a network.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from lic.errors import ModelError


@dataclass(frozen=True)
class Family:
    name: str  # the model file's "family"; what `--model` of `lic train` takes
    codec: str  # "module:Class" that runs exported model files of this family
    train_config: str  # "module:Class": the training options; the module's `train(config)` runs them

    def codec_class(self) -> Any:
        return _attribute(self.codec)

    def trainer(self) -> tuple[type, Any]:
        """(config dataclass, train function) of this family."""
        config = _attribute(self.train_config)
        return config, importlib.import_module(config.__module__).train


FAMILIES = (
    Family("hyperprior", "lic.codecs.hyperprior:HyperpriorCodec", "lic.train.hyperprior:HyperpriorTrainConfig"),
    Family("vq", "lic.codecs.vq:VQCodec", "lic.train.vq:VQTrainConfig"),
    Family("video", "lic.video.codec:VideoCodec", "lic.train.video:VideoTrainConfig"),
)
_BY_NAME = {f.name: f for f in FAMILIES}
assert len(_BY_NAME) == len(FAMILIES), "family names must be unique"


def family(name: str) -> Family:
    """The family called `name`, or a ModelError naming the ones this lic has."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ModelError(f"no codec family '{name}' in this version of lic ({', '.join(_BY_NAME)})") from None


def names() -> tuple[str, ...]:
    return tuple(f.name for f in FAMILIES)


def _attribute(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)
