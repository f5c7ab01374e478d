"""Crafted files: payload bytes changed and the CRC recomputed, as an attacker or a buggy tool
would. The CRC no longer helps, so the entropy decoders and the networks see the damage; each
file must decode or end in a LicError, never in another exception."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import lic
from helpers import SAMPLES, with_fixed_crc
from lic.errors import FormatError, LicError, ResourceError

MUTATIONS_PER_FILE = 100  # 200 per codec: two qualities each


def _crop() -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / "landscape.png").convert("RGB"))[:64, :96]


def _payload_start(data: bytes) -> int:
    header = lic.read_header(data)
    return len(data) - 4 - sum(header.stream_lengths)


@pytest.mark.parametrize("model, quality", [("hyperprior", 1), ("hyperprior", 6), ("vq", 2), ("vq", 6)])
def test_crc_fixed_payload_mutations_end_in_lic_errors(model, quality):
    data = lic.compress(_crop(), quality=quality, model=model)
    start = _payload_start(data)
    rng = np.random.default_rng(quality)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(MUTATIONS_PER_FILE):
        damaged = bytearray(data)
        for pos in rng.integers(start, len(data) - 4, rng.integers(1, 4)):
            damaged[pos] = rng.integers(0, 256)
        try:
            lic.decompress(with_fixed_crc(damaged))
            outcomes["decoded"] += 1
        except LicError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0, outcomes  # the mutations did reach the decoders


def test_constriction_rejecting_the_data_is_a_format_error():
    data = bytearray(lic.compress(_crop(), quality=6))
    y_start = _payload_start(bytes(data)) + lic.read_header(bytes(data)).stream_lengths[0]
    data[y_start:-4] = b"\xff" * (len(data) - 4 - y_start)  # the y stream: all ones
    with pytest.raises(FormatError, match="corrupted"):
        lic.decompress(with_fixed_crc(data))


def test_resource_errors_are_not_called_corruption(monkeypatch):
    from lic.codecs.hyperprior import HyperpriorCodec

    data = lic.compress(_crop(), quality=1)

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(HyperpriorCodec, "decode", out_of_memory)
    with pytest.raises(ResourceError, match="out of memory"):
        lic.decompress(data)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug, not a damaged file")

    monkeypatch.setattr(HyperpriorCodec, "decode", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        lic.decompress(data)


def _with_streams(data: bytes, change) -> bytes:
    """`data` re-packed (CRC recomputed) with its streams replaced by `change(streams)`."""
    from lic import bitstream

    header, streams = bitstream.unpack(data)
    return bitstream.pack(header, change(list(streams)))


@pytest.mark.parametrize("stream, change, message", [
    (1, lambda s: b"", "y stream is empty"),
    (0, lambda s: b"", "z stream is empty"),
    (1, lambda s: s + bytes(64), "y stream is corrupted \\(data after its last symbol"),
    (0, lambda s: s + bytes(64), "z stream is corrupted \\(data after its last symbol"),
])
def test_an_emptied_or_extended_hyperprior_stream_is_refused(stream, change, message):
    """The range decoder reads zeros past its data and ignores words after its last symbol:
    without the consumed-exactly rule these decoded, silently, to other pixels."""
    data = lic.compress(_crop(), quality=3)
    crafted = _with_streams(data, lambda s: [*s[:stream], change(s[stream]), *s[stream + 1:]])
    with pytest.raises(FormatError, match=message):
        lic.decompress(crafted)


def test_an_extended_vq_index_stream_is_refused():
    from lic import bitstream
    from lic.codecs.vq import CONTEXT_CODED

    data = lic.compress(_crop(), quality=6, model="vq")
    assert bitstream.unpack(data)[1][0][0] == CONTEXT_CODED  # range coded, not fixed length
    crafted = _with_streams(data, lambda s: [s[0] + bytes(64)])
    with pytest.raises(FormatError, match="index stream is corrupted \\(data after its last symbol"):
        lic.decompress(crafted)
