"""The learned codecs: each turns a padded image tensor into entropy-coded streams.

`registry.py` lists the families; each family's codec is a module of its own here.
"""

from __future__ import annotations

from lic.codecs.registry import family


def codec_class(name: str):
    """The codec class that runs model files of family `name`."""
    return family(name).codec_class()
