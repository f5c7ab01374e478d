"""The .lic video container: the image container (`lic.bitstream`) extended to a sequence.

A clip is written and read one frame at a time, so neither side holds more than a frame.
Layout, version 2 (integers little-endian; "varint" is unsigned LEB128):

    offset size  field
    header (fixed size, so that the frame count can be filled in after streaming):
    0      4     magic b"\\x89LIV" (not the image magic: an image reader refuses a clip by name)
    4      1     format version (2; version 1 is still read, see below)
    5      1     codec id (a video family's id in `lic.codec_ids`: 3 video)
    6      1     quality the encoder used
    7      1     flags: bit 0 every frame is an I-frame (all-intra)
    8      4     model hash: first 4 bytes of SHA-256 of the video model file
    12     4     width   (of the source frames)
    16     4     height
    20     1     padding bottom (the coded frames are padded to the codec's stride)
    21     1     padding right
    22     4     frame rate numerator   (1 .. 2^31-1: what FFmpeg's muxers take, `MAX_RATE_TERM`)
    26     4     frame rate denominator (1 .. 2^31-1)
    30     4     frame count
    34     2     GOP: an I-frame every this many frames (frame 0 is always one)
    36     4     CRC-32 of bytes 0..35
    then one record per frame:
    0      1     frame type: 0 I (a random-access point: decodes without earlier frames), 1 P
    1      4     entropy-parameter digest of the frame (digest of what its decoder re-derives;
                 `lic.video.codec` also binds a P-frame's motion and block map to it)
    5      ...   varints: frame index (0 for the first record; under the CRC, so swapped or
                 repeated records are caught by the reader, not decoded in the wrong place;
                 one byte for frames 0..127, two up to 16383), stream count S, then S stream
                 lengths in bytes
    ...          the S streams
    end-4  4     CRC-32 of the record's bytes before it

Version 1 (written by lic before the frame index) has the same header and records without
the frame index; it is still read, with less protection: its records' order and its P-frames'
block maps are not checked.

Every CRC is checked before the fields it covers are used. A clip that ends early, a damaged
record, records out of order and trailing bytes are all reported with the frame they concern.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Iterator

from lic.bitstream import MAGIC as IMAGE_MAGIC, VIDEO_MAGIC as MAGIC, VarintReader, varint
from lic import codec_ids
from lic.errors import FormatError, InputError

VERSION = 2
READABLE_VERSIONS = (1, 2)
FLAG_INTRA_ONLY = 1
FRAME_I, FRAME_P = 0, 1
_HEADER = struct.Struct("<4sBBBB4sIIBBIIIH")
HEADER_SIZE = _HEADER.size + 4
_RECORD_FIXED = struct.Struct("<B4s")
_MAX_VARINT_BYTES = 5  # a 32-bit value; no record field needs more
_MAX_STREAMS = 16
MAX_SIDE = 1 << 16
#: The largest numerator or denominator of a frame rate: FFmpeg's muxers take the rate as a
#: C int fraction, so a clip with a larger one could be coded but not decoded to a video file.
MAX_RATE_TERM = (1 << 31) - 1
_MAX_RATE_DENOMINATOR = 1_000_000


def frame_rate(fps: "float | int | Fraction") -> Fraction:
    """`fps` as the fraction a clip stores (denominators up to 10^6: 30000/1001 stays exact;
    a header from elsewhere may hold any term up to `MAX_RATE_TERM`).

    An `InputError` unless it is finite, positive and within `MAX_RATE_TERM`: checked where a
    rate enters (an option, a source clip, bare frames), before the first frame is coded."""
    try:
        exact = Fraction(fps)
    except (ValueError, OverflowError, TypeError):
        raise InputError(f"the frame rate must be a finite positive number (got {fps})") from None
    if exact <= 0:
        raise InputError(f"the frame rate must be positive (got {fps})")
    rate = exact.limit_denominator(_MAX_RATE_DENOMINATOR)
    if rate == 0 or rate.numerator > MAX_RATE_TERM:
        raise InputError(f"the frame rate {fps} is out of range (lic takes rates from 1/{_MAX_RATE_DENOMINATOR} "
                         f"to {MAX_RATE_TERM} frames per second)")
    return rate


@dataclass
class VideoHeader:
    codec_id: int
    quality: int
    model_hash: bytes
    width: int
    height: int
    fps: Fraction
    frames: int
    gop: int
    pad_bottom: int = 0
    pad_right: int = 0
    flags: int = 0
    version: int = VERSION  # of the file it was read from; `pack` always writes `VERSION`

    @property
    def codec_name(self) -> str:
        return codec_ids.name_of(self.codec_id)

    @property
    def intra_only(self) -> bool:
        return bool(self.flags & FLAG_INTRA_ONLY)

    def pack(self) -> bytes:
        body = _HEADER.pack(MAGIC, VERSION, self.codec_id, self.quality, self.flags, self.model_hash,
                            self.width, self.height, self.pad_bottom, self.pad_right,
                            self.fps.numerator, self.fps.denominator, self.frames, self.gop)
        return body + struct.pack("<I", zlib.crc32(body))


@dataclass
class FrameRecord:
    kind: int  # FRAME_I or FRAME_P
    digest: bytes
    streams: list[bytes]
    index: int = 0  # of the frame in its clip
    version: int = VERSION  # of the clip it was read from; `pack` always writes `VERSION`

    def pack(self) -> bytes:
        body = bytearray(_RECORD_FIXED.pack(self.kind, self.digest))
        body += varint(self.index)
        body += varint(len(self.streams))
        for s in self.streams:
            body += varint(len(s))
        for s in self.streams:
            body += s
        return bytes(body + struct.pack("<I", zlib.crc32(body)))


def is_video(prefix: bytes) -> bool:
    """Whether data starting with `prefix` claims to be a .lic video (magic only)."""
    return prefix[:4] == MAGIC


def read_header(data: bytes) -> VideoHeader:
    """Parses and verifies the header at the start of `data` (at least `HEADER_SIZE` bytes)."""
    if data[:4] == IMAGE_MAGIC:
        raise FormatError("a .lic image, not a video (decode it with `lic decode` or lic.decompress)")
    if data[:4] != MAGIC:
        raise FormatError("not a .lic video (wrong magic bytes)")
    if len(data) < HEADER_SIZE:
        raise FormatError("the video is truncated (header ends early)")
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    if zlib.crc32(data[: _HEADER.size]) != crc:
        raise FormatError("the video header is corrupted (checksum mismatch)")
    (_, version, codec_id, quality, flags, model_hash, width, height, pad_bottom, pad_right,
     fps_num, fps_den, frames, gop) = _HEADER.unpack_from(data)
    if version not in READABLE_VERSIONS:
        raise FormatError(f"video format version {version} is not supported "
                          f"(this lic reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    found = codec_ids.by_id(codec_id)
    if found is None:
        raise FormatError(f"unknown codec id {codec_id} (a newer lic may read it)")
    if found.media != "video":
        raise FormatError(f"the video header is corrupted (codec id {codec_id} is an {found.media} codec)")
    if not (0 < width < MAX_SIDE and 0 < height < MAX_SIDE) or fps_num == 0 or fps_den == 0 or gop == 0:
        raise FormatError("the video header is corrupted (impossible size, frame rate or GOP)")
    if max(fps_num, fps_den) > MAX_RATE_TERM:
        raise FormatError(f"the video header is corrupted (frame rate {fps_num}/{fps_den}: lic writes "
                          f"numerators and denominators up to {MAX_RATE_TERM})")
    return VideoHeader(codec_id, quality, model_hash, width, height, Fraction(fps_num, fps_den), frames, gop,
                       pad_bottom, pad_right, flags, version)


def read_records(stream: BinaryIO, header: VideoHeader) -> Iterator[FrameRecord]:
    """The frame records after the header, one at a time, each CRC-checked before it is parsed.

    A record longer than raw RGBA of the coded frame is refused before it is read: no honest
    encoder writes one, and a damaged length field must not ask for gigabytes."""
    coded_pixels = (header.width + header.pad_right) * (header.height + header.pad_bottom)
    max_record = 4 * coded_pixels + 4096
    for index in range(header.frames):
        fixed = stream.read(_RECORD_FIXED.size)
        if len(fixed) < _RECORD_FIXED.size:
            raise FormatError(f"the video is truncated (frame {index} of {header.frames} is missing)")
        fields = bytearray()
        stated = _read_varint(stream, index, fields) if header.version >= 2 else index
        count = _read_varint(stream, index, fields)
        if count > _MAX_STREAMS:
            raise FormatError(f"frame {index} is corrupted (bad stream count)")
        lengths = [_read_varint(stream, index, fields) for _ in range(count)]
        size = sum(lengths)
        if size > max_record:
            raise FormatError(f"frame {index} is corrupted (claims {size} bytes)")
        payload = stream.read(size + 4)
        if len(payload) < size + 4:
            raise FormatError(f"the video is truncated (frame {index} of {header.frames} ends early)")
        body = fixed + bytes(fields) + payload[:-4]
        if zlib.crc32(body) != struct.unpack("<I", payload[-4:])[0]:
            raise FormatError(f"frame {index} is corrupted (checksum mismatch)")
        kind, digest = _RECORD_FIXED.unpack(fixed)
        if stated != index:
            raise FormatError(f"frame {index} is corrupted (the record of frame {stated} is in its place: "
                              "records missing or out of order)")
        if kind not in (FRAME_I, FRAME_P) or (index == 0 and kind != FRAME_I):
            raise FormatError(f"frame {index} is corrupted (frame type {kind})")
        streams, pos = [], 0
        for n in lengths:
            streams.append(payload[pos : pos + n])
            pos += n
        yield FrameRecord(kind, digest, streams, index, header.version)
    if stream.read(1):
        raise FormatError(f"the video is corrupted (bytes after its {header.frames} frames)")


def _read_varint(stream: BinaryIO, index: int, raw: bytearray) -> int:
    """One varint of frame `index`'s record from `stream`; its bytes are appended to `raw` (for the CRC)."""
    start = len(raw)
    while True:
        byte = stream.read(1)
        if not byte:
            raise FormatError(f"the video is truncated (in frame {index})")
        raw += byte
        if not byte[0] & 0x80:
            return VarintReader(bytes(raw[start:]), 0).varint()
        if len(raw) - start >= _MAX_VARINT_BYTES:
            raise FormatError(f"frame {index} is corrupted (bad length field)")
