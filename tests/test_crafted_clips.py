"""Crafted clips: records changed and their CRCs recomputed, as an attacker or a buggy tool
would. Each must end in a FormatError or DeterminismError that names the frame, never in a
decoded clip of other pixels (each case below decoded silently, exit 0, before clip format 2
and the consumed-exactly rule of the range decoders)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest

from helpers import moving_clip
import lic
from lic.bitstream import varint
from lic.errors import LicError
from lic.video import container
from lic.video.container import FRAME_P, FrameRecord, VideoHeader


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[VideoHeader, list[FrameRecord], list[np.ndarray]]:
    """I P P P from the shipped video model (its block maps are mixed, unlike an untrained
    model's), with the frames it decodes to."""
    path = tmp_path_factory.mktemp("clip") / "c.lic"
    lic.compress_video(moving_clip(4, 64, 128), path, 1, fps=25)
    data = path.read_bytes()
    header = container.read_header(data)
    records = list(container.read_records(io.BytesIO(data[container.HEADER_SIZE :]), header))
    assert [r.kind for r in records] == [0, 1, 1, 1]
    assert all(len(set(r.streams[1])) > 1 for r in records[1:])  # mixed maps: all-0 and all-1 change them
    return header, records, list(lic.decompress_video(data))


def _clip_bytes(header: VideoHeader, records: list[FrameRecord]) -> bytes:
    return header.pack() + b"".join(r.pack() for r in records)  # every CRC recomputed


def _changed(records: list[FrameRecord], frame: int, stream: int, change) -> list[FrameRecord]:
    out = [FrameRecord(r.kind, r.digest, list(r.streams), r.index) for r in records]
    out[frame].streams[stream] = change(out[frame].streams[stream])
    return out


def _refused(data: bytes, message: str) -> None:
    with pytest.raises(LicError, match=message):
        list(lic.decompress_video(data))


@pytest.mark.parametrize("frame, stream, change, message", [
    (0, 1, lambda s: b"", "frame 0: the y stream is empty"),
    (0, 1, lambda s: s + bytes(64), "frame 0: the y stream is corrupted \\(data after its last symbol"),
    (0, 0, lambda s: s + bytes(64), "frame 0: the z stream is corrupted \\(data after its last symbol"),
    (2, 3, lambda s: b"", "frame 2: the y stream is empty"),
    (2, 3, lambda s: s + bytes(64), "frame 2: the y stream is corrupted \\(data after its last symbol"),
    (1, 1, lambda s: bytes(len(s)), "frame 1: .*digest mismatch"),
    (1, 1, lambda s: b"\xff" * len(s), "frame 1: .*digest mismatch"),
    (3, 1, lambda s: bytes([s[0] ^ 1]) + s[1:], "frame 3: .*digest mismatch"),
])
def test_damaged_streams_are_refused_naming_the_frame(clip, frame, stream, change, message):
    header, records, _ = clip
    _refused(_clip_bytes(header, _changed(records, frame, stream, change)), message)


@pytest.mark.parametrize("order, message", [
    ([0, 2, 1, 3], "frame 1 is corrupted \\(the record of frame 2 is in its place"),
    ([0, 3, 2, 1], "frame 1 is corrupted \\(the record of frame 3 is in its place"),
    ([0, 1, 3, 2], "frame 2 is corrupted \\(the record of frame 3 is in its place"),
])
def test_swapped_or_reversed_records_are_refused(clip, order, message):
    header, records, _ = clip
    _refused(_clip_bytes(header, [records[i] for i in order]), message)


def test_the_untouched_clip_decodes(clip):
    header, records, frames = clip
    decoded = list(lic.decompress_video(_clip_bytes(header, records)))
    assert len(decoded) == 4 and all(np.array_equal(a, b) for a, b in zip(decoded, frames))


def _version_1(header: VideoHeader, records: list[FrameRecord]) -> bytes:
    """The clip in format 1, built from its layout: version byte 1, records without a frame
    index, P-frame checks of the residual alone (format 2 XORs in a digest of the block map
    and motion streams)."""
    head = bytearray(header.pack())
    head[4] = 1
    head[-4:] = struct.pack("<I", zlib.crc32(bytes(head[:-4])))
    out = bytearray(head)
    for r in records:
        check = r.digest
        if r.kind == FRAME_P:
            side = hashlib.blake2b(r.streams[1] + r.streams[0], digest_size=4).digest()
            check = bytes(a ^ b for a, b in zip(check, side))
        body = bytearray(struct.pack("<B4s", r.kind, check)) + varint(len(r.streams))
        body += b"".join(varint(len(s)) for s in r.streams) + b"".join(r.streams)
        out += body + struct.pack("<I", zlib.crc32(bytes(body)))
    return bytes(out)


def test_clips_of_format_1_still_decode_to_the_same_frames(clip):
    header, records, frames = clip
    old = _version_1(header, records)
    assert container.read_header(old).version == 1
    decoded = list(lic.decompress_video(old))
    assert len(decoded) == 4 and all(np.array_equal(a, b) for a, b in zip(decoded, frames))


@pytest.mark.parametrize("numerator", [2**31, 2**32 - 1])
def test_a_header_frame_rate_beyond_what_writers_take_is_refused(clip, numerator):
    header, records, _ = clip
    body = bytearray(_clip_bytes(header, records)[: container.HEADER_SIZE - 4])
    struct.pack_into("<II", body, 22, numerator, 1)
    crafted = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(LicError, match="frame rate"):
        container.read_header(crafted)
