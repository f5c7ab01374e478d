"""The .lic container: one header, the codec's entropy-coded streams, a CRC-32.

Layout, version 1 (integers little-endian; "varint" is unsigned LEB128):

    offset size  field
    0      4     magic b"\\x89LIC" (the high byte catches 7-bit transfers, as in PNG)
    4      1     format version (1)
    5      1     codec id (an image family's id in `lic.codec_ids`: 1 hyperprior, 2 vq)
    6      1     quality / level the encoder used
    7      1     flags: bit 0 alpha stream present, bit 1 source was greyscale,
                 bit 2 source had 16 bits per sample
    8      4     model hash: first 4 bytes of SHA-256 of the model file
    12     4     entropy-parameter digest: digest of the parameters the decoder must
                 re-derive (e.g. the hyperprior's scale indices and means)
    16     ...   varints: width, height, padding bottom, padding right (of the coded image),
                 [version 2 only: the quantisation step code, zigzag-coded: 0 -> 0, -1 -> 1,
                 1 -> 2, ...], stream count S, then S stream lengths in bytes
    ...          the S streams; if the alpha flag is set, the last one is the zlib-compressed
                 alpha plane
    end-4  4     CRC-32 of every byte before it

The header is small on purpose: at the VQ codec's rates a whole image is a few hundred bytes.

Version 2 adds the quantisation step code (rate control, `--target-bpp` and the like: the
hyperprior codes y in steps of 2**(code/64) instead of 1, `lic.codecs.hyperprior`). A file
whose code is 0 is written as version 1, byte for byte as before, so only files that need
the field need a reader of version 2.

Compatibility rule. Files are archived for years, so the format is pinned by golden files:
`tests/fixtures/golden-*.lic` must decode to the pixel hashes in `tests/fixtures/goldens.json`
(`tests/test_goldens.py`). A deliberate change to this layout, the entropy coder, its tables
or a decoder network bumps `VERSION`, keeps decoding the old versions or refuses them by
name ("format version N is not supported"), and regenerates the goldens
(`python tests/fixtures/make_goldens.py`) in the same commit. Replacing a shipped model
changes no format: old files name their model by hash and are refused as needing a model
that is not installed, so the goldens are regenerated then too.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from lic import codec_ids
from lic.errors import FormatError

MAGIC = b"\x89LIC"
VIDEO_MAGIC = b"\x89LIV"  # a clip: `lic.video.container`
VERSION = 2  # the newest version written; `SUPPORTED` are read
SUPPORTED = (1, 2)

FLAG_ALPHA, FLAG_GREY, FLAG_16BIT = 1, 2, 4
_FIXED = struct.Struct("<4sBBBB4s4s")


@dataclass
class Header:
    codec_id: int
    quality: int
    model_hash: bytes
    digest: bytes
    width: int
    height: int
    pad_bottom: int = 0
    pad_right: int = 0
    flags: int = 0
    stream_lengths: list[int] = field(default_factory=list)
    step: int = 0  # quantisation step code (version 2); 0: the model's own step of 1

    @property
    def codec_name(self) -> str:
        return codec_ids.name_of(self.codec_id)

    @property
    def has_alpha(self) -> bool:
        return bool(self.flags & FLAG_ALPHA)


def varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class VarintReader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def varint(self) -> int:
        n = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise FormatError("the file is truncated (header ends early)")
            if shift > 63:
                raise FormatError("the file header is corrupted (oversized number)")
            byte = self.data[self.pos]
            self.pos += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return n


def pack(header: Header, streams: list[bytes]) -> bytes:
    if len(header.model_hash) != 4 or len(header.digest) != 4:
        raise ValueError("model hash and digest must be 4 bytes each")
    version = 2 if header.step else 1
    body = bytearray(_FIXED.pack(MAGIC, version, header.codec_id, header.quality,
                                 header.flags, header.model_hash, header.digest))
    sizes = (header.width, header.height, header.pad_bottom, header.pad_right)
    steps = (2 * header.step if header.step >= 0 else -2 * header.step - 1,) if version == 2 else ()
    for n in (*sizes, *steps, len(streams)):
        body += varint(n)
    for s in streams:
        body += varint(len(s))
    for s in streams:
        body += s
    body += struct.pack("<I", zlib.crc32(body))
    return bytes(body)


_MAX_STREAMS = 64
_MAX_BYTES_PER_PIXEL = 4  # more than raw RGBA: no honest file is larger (plus a small allowance)


def _declared_size(data: bytes) -> int | None:
    """The file size the header claims, or None if the header is unreadable or claims a size
    no honest file of its image size could have (then a length field is what is damaged)."""
    try:
        reader = VarintReader(data, _FIXED.size)
        width, height, pad_bottom, pad_right = (reader.varint() for _ in range(4))
        if data[4] == 2:
            reader.varint()
        count = reader.varint()
        if count > _MAX_STREAMS:
            return None
        lengths = [reader.varint() for _ in range(count)]
    except FormatError:
        return None
    size = reader.pos + sum(lengths) + 4
    coded_pixels = (width + pad_right) * (height + pad_bottom)
    return size if size <= _MAX_BYTES_PER_PIXEL * coded_pixels + 1024 else None


def unpack(data: bytes) -> tuple[Header, list[bytes]]:
    """Parses and verifies a .lic file; every defect raises `FormatError`.

    The CRC is checked before anything else is believed, so that a damaged byte reads as
    damage, not as (say) an unsupported version.
    """
    if data[:4] == VIDEO_MAGIC:
        raise FormatError("a .lic video, not an image (decode it with `lic decode` or lic.decompress_video)")
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not a .lic file (wrong magic bytes)")
    if len(data) < _FIXED.size + 4:
        raise FormatError("the file is truncated")
    (stored_crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != stored_crc:
        declared = _declared_size(data)
        if declared is not None and declared > len(data):
            raise FormatError(f"the file is truncated ({len(data)} of {declared} bytes)")
        raise FormatError("the file is corrupted (checksum mismatch)")
    _, version, codec_id, quality, flags, model_hash, digest = _FIXED.unpack_from(data)
    if version not in SUPPORTED:
        raise FormatError(f"format version {version} is not supported (this lic reads versions "
                          f"{', '.join(map(str, SUPPORTED))})")
    reader = VarintReader(data, _FIXED.size)
    width, height, pad_bottom, pad_right = (reader.varint() for _ in range(4))
    step = 0
    if version == 2:
        code = reader.varint()
        step = code // 2 if code % 2 == 0 else -(code + 1) // 2
        if step == 0:
            raise FormatError("the file header is corrupted (version 2 without a quantisation step)")
    count = reader.varint()
    if count > _MAX_STREAMS:
        raise FormatError("the file header is corrupted (too many streams)")
    lengths = [reader.varint() for _ in range(count)]
    if reader.pos + sum(lengths) + 4 != len(data):
        raise FormatError("the file is corrupted (stream lengths do not match its size)")
    found = codec_ids.by_id(codec_id)
    if found is None:
        raise FormatError(f"unknown codec id {codec_id} (a newer lic may read it)")
    if found.media != "image":
        raise FormatError(f"the file header is corrupted (codec id {codec_id} is a {found.media} codec)")
    if width == 0 or height == 0:
        raise FormatError("the file header is corrupted (empty image)")
    streams, pos = [], reader.pos
    for n in lengths:
        streams.append(data[pos : pos + n])
        pos += n
    header = Header(codec_id, quality, model_hash, digest, width, height,
                    pad_bottom, pad_right, flags, lengths, step)
    return header, streams
