"""The learned image codecs: each turns a padded image tensor into entropy-coded streams.

An image codec is its analysis/synthesis transforms plus a latent codec (`latent/`). `registry.py`
lists the families; each family's codec is a module of its own (the video family's lives in
`lic.video`, above the image codecs it uses).
"""

from __future__ import annotations

from lic.codecs.registry import family


def codec_class(name: str):
    """The codec class that runs model files of family `name`."""
    return family(name).codec_class()
