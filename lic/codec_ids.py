"""The codec id byte of every family, as .lic files and clips record it.

Both containers (`lic.bitstream` for images, `lic.video.container` for clips) read the ids
here and nowhere else: an id is part of the file format, so it lives with the formats, below
the codecs, and is never reused for another family. A family added to `lic.codecs.registry`
takes a new id here (or `register`s one, as the tests' toy family does).
"""

from __future__ import annotations

from dataclasses import dataclass

from lic.errors import ModelError


@dataclass(frozen=True)
class CodecId:
    name: str  # the family's name, as model files and `lic.codecs.registry` spell it
    id: int  # the byte the header records
    media: str  # "image": the image container; "video": the clip container


_IDS: dict[int, CodecId] = {}


def register(name: str, codec_id: int, media: str) -> CodecId:
    """Gives family `name` the id `codec_id` (an id or a name already taken is a ValueError)."""
    if media not in ("image", "video"):
        raise ValueError(f"codec ids are for image or video families, not '{media}'")
    if codec_id in _IDS or any(c.name == name for c in _IDS.values()) or not 0 < codec_id < 256:
        raise ValueError(f"codec id {codec_id} for '{name}' is taken or out of range")
    _IDS[codec_id] = CodecId(name, codec_id, media)
    return _IDS[codec_id]


def unregister(name: str) -> None:
    """Frees the id `register` gave family `name` (tests that register a toy family)."""
    del _IDS[codec_id(name)]


register("hyperprior", 1, "image")
register("vq", 2, "image")
register("video", 3, "video")


def by_id(codec_id: int) -> CodecId | None:
    return _IDS.get(codec_id)


def codec_id(name: str) -> int:
    """The id that files of family `name` record (a ModelError for a family without one)."""
    for found in _IDS.values():
        if found.name == name:
            return found.id
    raise ModelError(f"codec family '{name}' has no codec id in this version of lic")


def name_of(codec_id: int) -> str:
    """The family's name for a header's id, or `unknown(id)` (for `lic info` of newer files)."""
    found = _IDS.get(codec_id)
    return found.name if found else f"unknown({codec_id})"
