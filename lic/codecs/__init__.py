"""The learned codecs: each turns a padded image tensor into entropy-coded streams."""

from __future__ import annotations

from lic.errors import ModelError


def codec_class(family: str):
    """The codec class that runs model files of `family`."""
    if family == "hyperprior":
        from lic.codecs.hyperprior import HyperpriorCodec

        return HyperpriorCodec
    if family == "vq":
        from lic.codecs.vq import VQCodec

        return VQCodec
    raise ModelError(f"no codec for model family '{family}' in this version of lic")
