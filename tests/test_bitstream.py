"""The .lic container: exact layout round trip, and every kind of damage is caught."""

import struct
import zlib

import pytest

from lic import bitstream
from lic.bitstream import FLAG_ALPHA, Header
from lic.errors import FormatError


def _file(**overrides) -> bytes:
    fields = dict(codec_id=1, quality=3, model_hash=b"\x01\x02\x03\x04", digest=b"abcd",
                  width=769, height=1, pad_bottom=63, pad_right=63, flags=FLAG_ALPHA)
    fields.update(overrides)
    return bitstream.pack(Header(**fields), [b"z" * 10, b"y" * 300, b""])


def test_roundtrip_keeps_every_field():
    header, streams = bitstream.unpack(_file())
    assert (header.codec_name, header.quality, header.width, header.height) == ("hyperprior", 3, 769, 1)
    assert (header.pad_bottom, header.pad_right, header.has_alpha) == (63, 63, True)
    assert header.model_hash == b"\x01\x02\x03\x04" and header.digest == b"abcd"
    assert streams == [b"z" * 10, b"y" * 300, b""] and header.stream_lengths == [10, 300, 0]


def test_layout_starts_as_documented():
    data = _file()
    assert data[:4] == b"\x89LIC" and data[4] == 1 and data[5:7] == b"\x01\x03"
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


@pytest.mark.parametrize("step, code", [(-1, 1), (1, 2), (-64, 127), (64, 128)])
def test_a_quantisation_step_makes_a_version_2_file_with_its_zigzag_code(step, code):
    data = _file(step=step)
    assert data[4] == 2 == bitstream.VERSION and data[16:20] == bytes([0x81, 0x06, 0x01, 0x3F])
    assert data[21 : 21 + len(bitstream.varint(code))] == bitstream.varint(code)
    header, streams = bitstream.unpack(data)
    assert header.step == step and streams == [b"z" * 10, b"y" * 300, b""]


def test_files_without_a_step_stay_version_1_byte_for_byte():
    data = _file()
    assert data[4] == 1 and bitstream.unpack(data)[0].step == 0
    assert len(_file(step=1)) == len(data) + 1


def test_large_sizes_use_multi_byte_varints():
    header, _ = bitstream.unpack(_file(width=100_000, height=2**31))
    assert (header.width, header.height) == (100_000, 2**31)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04zipfile", b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_foreign_files_are_refused(data):
    with pytest.raises(FormatError, match="not a .lic file"):
        bitstream.unpack(data)


def test_every_truncation_is_caught():
    data = _file()
    for n in range(len(data)):
        with pytest.raises(FormatError):
            bitstream.unpack(data[:n])


def test_every_flipped_byte_is_caught():
    data = _file()
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x10
        with pytest.raises(FormatError):
            bitstream.unpack(bytes(damaged))


def test_newer_versions_say_so():
    data = bytearray(_file())
    data[4] = 9
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(FormatError, match="version 9 is not supported"):
        bitstream.unpack(bytes(data))


def test_truncation_and_damage_are_told_apart():
    data = _file()
    with pytest.raises(FormatError, match="truncated"):
        bitstream.unpack(data[:-20])
    damaged = bytearray(data)
    damaged[4] ^= 1
    with pytest.raises(FormatError, match="checksum"):
        bitstream.unpack(bytes(damaged))


def test_truncation_states_the_declared_size():
    data = _file()
    for cut in (1, 4, 5, 100, 300):
        with pytest.raises(FormatError, match=rf"truncated \({len(data) - cut} of {len(data)} bytes\)"):
            bitstream.unpack(data[:-cut])


def test_a_damaged_length_field_is_not_reported_as_an_absurd_size():
    data = _file()
    lengths_at = data.index(bytes([3, 10, 0xAC, 0x02, 0]))  # stream count 3, lengths 10, 300, 0
    damaged = data[: lengths_at + 2] + b"\xff" * 7 + b"\x7f" + data[lengths_at + 4 :]  # 300 -> ~2**56
    with pytest.raises(FormatError) as e:
        bitstream.unpack(damaged)
    assert "checksum mismatch" in str(e.value) and not any(len(w) > 9 for w in str(e.value).split())
