"""The video codec: container, closed-loop exactness, determinism, bad clips."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import lic
from helpers import DATA, moving_clip, needs_data, photo_like
from lic import bitstream, models
from lic.errors import FormatError, LicError
from lic.video import container
from lic.video.container import FRAME_I, FRAME_P, FrameRecord, VideoHeader


def test_header_and_records_round_trip():
    header = VideoHeader(3, 2, b"\x01\x02\x03\x04", 416, 240, Fraction(30000, 1001), 3, 32, 16, 32, 0)
    records = [FrameRecord(FRAME_I, b"abcd", [b"x" * 10, b""]), FrameRecord(FRAME_P, b"efgh", [b"1", b"22", b"333"], 1),
               FrameRecord(FRAME_P, b"ijkl", [b"y" * 300], 2)]
    data = header.pack() + b"".join(r.pack() for r in records)
    assert container.read_header(data) == header
    stream = io.BytesIO(data[container.HEADER_SIZE :])
    assert list(container.read_records(stream, header)) == records


def test_the_frame_index_costs_a_byte_below_frame_128_and_two_below_16384():
    header = VideoHeader(3, 2, b"\x01\x02\x03\x04", 64, 64, Fraction(25), 300, 32)
    records = [FrameRecord(FRAME_I if i == 0 else FRAME_P, b"abcd", [b"s" * 20], i) for i in range(300)]
    assert [len(records[i].pack()) for i in (0, 127, 128, 299)] == [32, 32, 33, 33]  # type, check 4, index 1-2, count, length, 20, CRC 4
    stream = io.BytesIO(b"".join(r.pack() for r in records))
    assert [r.index for r in container.read_records(stream, header)] == list(range(300))


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:-3], "frame 2 of 3 ends early"),
    (lambda d: d + b"\0", "bytes after its 3 frames"),
    (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "frame 0 is corrupted (checksum"),
    (lambda d: d[:5] + b"\x07" + d[6:], "header is corrupted (checksum"),
    (lambda d: d[: container.HEADER_SIZE], "frame 0 of 3 is missing"),
])
def test_damaged_clips_name_the_frame(damage, message):
    header = VideoHeader(3, 1, b"\0" * 4, 64, 64, Fraction(25), 3, 32)
    data = header.pack() + b"".join(FrameRecord(FRAME_I if i == 0 else FRAME_P, b"abcd", [b"z" * 20], i).pack()
                                    for i in range(3))
    bad = damage(data)
    with pytest.raises(FormatError, match=message.replace("(", r"\(")):
        h = container.read_header(bad)
        list(container.read_records(io.BytesIO(bad[container.HEADER_SIZE :]), h))


def test_a_record_longer_than_raw_rgba_is_refused_before_it_is_read():
    header = VideoHeader(3, 1, b"\0" * 4, 64, 64, Fraction(25), 1, 32)
    record = FrameRecord(FRAME_I, b"abcd", [b"z" * (4 * 64 * 64 + 4097)]).pack()
    with pytest.raises(FormatError, match="frame 0 is corrupted \\(claims"):
        list(container.read_records(io.BytesIO(record), header))


def test_image_and_video_readers_refuse_each_other():
    clip = VideoHeader(3, 1, b"\0" * 4, 64, 64, Fraction(25), 0, 32).pack()
    with pytest.raises(FormatError, match="a .lic video, not an image"):
        bitstream.unpack(clip)
    image = lic.compress(photo_like(64, 64), quality=1)
    with pytest.raises(FormatError, match="a .lic image, not a video"):
        container.read_header(image)


def test_decoded_frames_equal_the_encoders_closed_loop(video_model):
    """Byte for byte: what the encoder predicted from is what the decoder reconstructs."""
    codec = models.load_codec(video_model, "cpu")
    reference, records, closed_loop = None, [], []
    for index, frame in enumerate(moving_clip(5, 64, 128)):  # sides multiples of the codec's stride
        record, reference = codec.encode_frame(frame, None if index % 4 == 0 else reference)
        records.append(record)
        closed_loop.append(reference)
    assert [r.kind for r in records] == [FRAME_I, FRAME_P, FRAME_P, FRAME_P, FRAME_I]
    decoded = None
    for record, expected in zip(records, closed_loop):
        decoded = codec.decode_frame(record, decoded, 64, 128)
        assert np.array_equal(decoded, expected)


def _digest(path: Path, model: Path) -> str:
    frames = lic.decompress_video(path, model=str(model))
    return hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest()


@pytest.mark.slow
def test_decoding_is_identical_across_threads_and_processes(video_model, tmp_path):
    out = tmp_path / "c.lic"
    summary = lic.compress_video(moving_clip(4, 64, 80), out, 1, model=str(video_model), fps=Fraction(50))
    video = lic.decompress_video(out, model=str(video_model))
    assert (video.header.width, video.header.height, video.header.frames, video.header.fps) == (80, 64, 4, 50)
    assert summary["bytes"] == out.stat().st_size
    first = _digest(out, video_model)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _digest(out, video_model) == first
    finally:
        torch.set_num_threads(threads)
    script = ("import hashlib, lic, torch; torch.set_num_threads(2); "
              f"v = lic.decompress_video({str(out)!r}, model={str(video_model)!r}); "
              "print(hashlib.sha256(b''.join(f.tobytes() for f in v)).hexdigest())")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() == first


def test_a_changed_entropy_digest_is_a_clear_error(video_model, tmp_path):
    """A P-frame whose recorded digest differs from what the decoder derives stops decoding."""
    out = tmp_path / "c.lic"
    lic.compress_video(moving_clip(2), out, 1, model=str(video_model), fps=25)
    data = out.read_bytes()
    header = container.read_header(data)
    records = list(container.read_records(io.BytesIO(data[container.HEADER_SIZE :]), header))
    records[1].digest = bytes(b ^ 0xFF for b in records[1].digest)
    forged = header.pack() + b"".join(r.pack() for r in records)
    with pytest.raises(LicError, match="digest mismatch"):
        list(lic.decompress_video(forged, model=str(video_model)))


def test_bad_frames_are_refused_before_anything_is_written(video_model, tmp_path):
    out = tmp_path / "c.lic"
    frames = moving_clip(3)
    frames[2] = frames[2][:32]
    with pytest.raises(LicError, match="frame 2 is 96x32, the clip is 96x64"):
        lic.compress_video(frames, out, 1, model=str(video_model), fps=25)
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.raises(LicError, match="no frames"):
        lic.compress_video([], out, 1, model=str(video_model), fps=25)
    with pytest.raises(LicError, match="not a video model"):
        lic.compress_video(moving_clip(1), out, 1, model="hyperprior", fps=25)


@needs_data
def test_shipped_video_model_codes_real_motion_cheaper_than_intra(tmp_path):
    """The zoo's video q1 on BasketballPass: P-frames must pay (the point of inter coding)."""
    from lic.eval.metrics import psnr
    from lic.video.io import open_video

    clip = open_video(DATA / "video" / "BasketballPass_416x240_50fps_100f", fps=50)
    p = lic.compress_video(clip, tmp_path / "p.lic", 1, max_frames=4)
    i = lic.compress_video(DATA / "video" / "BasketballPass_416x240_50fps_100f", tmp_path / "i.lic", 1,
                           fps=50, max_frames=4, intra_only=True)
    assert p["bytes"] < 0.6 * i["bytes"], (p["bytes"], i["bytes"])
    source = open_video(DATA / "video" / "BasketballPass_416x240_50fps_100f", fps=50)
    decoded = lic.decompress_video(tmp_path / "p.lic")
    scores = [psnr(a, b) for a, b, _ in zip(source, decoded, range(4))]
    assert len(scores) == 4 and min(scores) > 25, scores


def test_a_p_frame_with_missing_or_misshapen_streams_is_refused(video_model):
    codec = models.load_codec(video_model, "cpu")
    frames = moving_clip(2, 64, 128)
    _, reference = codec.encode_frame(frames[0], None)
    record, _ = codec.encode_frame(frames[1], reference)
    for streams in (record.streams[:3], [record.streams[0], record.streams[1] + b"\0", *record.streams[2:]]):
        with pytest.raises(FormatError, match="P-frame needs motion, block map"):
            codec.decode_frame(FrameRecord(FRAME_P, record.digest, streams), reference, 64, 128)
    with pytest.raises(FormatError, match="without a reference"):
        codec.decode_frame(record, None, 64, 128)
