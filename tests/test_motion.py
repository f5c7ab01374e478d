"""Block motion for P-frames: exact integer prediction, the search, and motion-field coding."""

from __future__ import annotations

import math

import constriction
import numpy as np
import pytest
from compressai.entropy_models import GaussianConditional
from PIL import Image

from helpers import DATA
from lic.codecs.latent.gaussian import scale_table
from lic.entropy import CdfTables, encode_symbols
from lic.errors import FormatError
from lic.eval.metrics import psnr
from lic.video import motion_coding
from lic.video.motion import estimate, predict, prediction_error, window
from lic.video.motion_coding import MAX_VECTOR, best_table, decode_motion, encode_motion

BASKETBALL = DATA / "video" / "BasketballPass_416x240_50fps_100f"

# The interpolation filter as specified (HEVC's chroma filter at quarter-pel positions),
# written out again so that the reference below shares no code with lic.video.motion.
SPEC_TAPS = ((0, 64, 0, 0), (-4, 54, 16, -2), (-4, 36, 36, -4), (-2, 16, 54, -4))


def slow_predict(ref: np.ndarray, mv: np.ndarray, block: int) -> np.ndarray:
    """OBMC prediction pixel by pixel in Python integers, from the specification."""
    h, w, channels = ref.shape
    rows, cols = h // block, w // block
    own = [round(block + block * math.sin(math.pi * (2 * min(p, block - 1 - p) + 1) / (2 * block))) for p in range(block)]
    shift = 12 + 2 * int(math.log2(2 * block))
    img, field = ref.tolist(), mv.tolist()

    def blocks(pos: int, count: int):
        b, p = divmod(pos, block)
        other = min(max(b + (1 if 2 * p >= block else -1), 0), count - 1)
        return ((b, own[p]), (other, 2 * block - own[p]))

    def sample(qy: int, qx: int) -> list[int]:
        (iy, fy), (ix, fx) = divmod(qy, 4), divmod(qx, 4)
        total = [0] * channels
        for i in range(4):
            for j in range(4):
                pixel = img[min(max(iy - 1 + i, 0), h - 1)][min(max(ix - 1 + j, 0), w - 1)]
                for c in range(channels):
                    total[c] += SPEC_TAPS[fy][i] * SPEC_TAPS[fx][j] * pixel[c]
        return total

    out = np.zeros_like(ref)
    for y in range(h):
        for x in range(w):
            acc = [0] * channels
            for by, wy in blocks(y, rows):
                for bx, wx in blocks(x, cols):
                    dy, dx = field[by][bx]
                    for c, s in enumerate(sample(4 * y + dy, 4 * x + dx)):
                        acc[c] += wy * wx * s
            out[y, x] = [min(max((a + (1 << (shift - 1))) >> shift, 0), 255) for a in acc]
    return out


def all_phase_field(rows: int, cols: int, seed: int) -> np.ndarray:
    """Random vectors in which every one of the 16 quarter-pel phase pairs occurs, plus far-out ones."""
    rng = np.random.default_rng(seed)
    mv = 4 * rng.integers(-12, 12, (rows, cols, 2))
    k = np.arange(rows * cols).reshape(rows, cols)
    mv[..., 0] += k % 4
    mv[..., 1] += (k // 4) % 4
    mv[0, 0] = (-MAX_VECTOR, MAX_VECTOR - 3)
    mv[-1, -1] = (10001, -9998)
    mv[rows // 2, 0] = (-77, 150)  # past the frame's left, bottom and right edges
    return mv.astype(np.int32)


def smooth_scene(height: int, width: int, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
    """A textured, non-repeating smooth image sampled at (y + dy, x + dx): exact sub-pixel motion."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y, x = y + dy, x + dx
    out = np.zeros((height, width, 3))
    for _ in range(14):
        period = rng.uniform(12, 48)
        angle = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi, 3)
        wave = 2 * math.pi / period * (y * math.sin(angle) + x * math.cos(angle))
        out += rng.uniform(5, 14) * np.sin(wave[..., None] + phase)
    return np.clip(128 + out, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def tables() -> CdfTables:
    """The residual model's y tables, built as `hyperprior.export` builds them."""
    gc = GaussianConditional(None)
    gc.update_scale_table(scale_table().float(), force=True)
    return CdfTables.from_compressai(gc)


# --- prediction -----------------------------------------------------------------------------


def test_window_is_the_rounded_raised_cosine():
    for block in (2, 4, 8, 16, 32):
        p = np.arange(block)
        u = 2 * np.minimum(p, block - 1 - p) + 1
        assert np.array_equal(window(block), np.round(block + block * np.sin(np.pi * u / (2 * block))))
    assert np.abs(window(64) - np.round(64 + 64 * np.sin(np.pi * (2 * np.minimum(np.arange(64), 63 - np.arange(64)) + 1) / 128))).max() <= 1


@pytest.mark.parametrize("block", [8, 16])
def test_predict_matches_the_slow_reference(block):
    ref = np.random.default_rng(block).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    mv = all_phase_field(32 // block, 48 // block, seed=block)
    assert np.array_equal(predict(ref, mv, block), slow_predict(ref, mv, block))


def test_predict_with_zero_motion_is_the_reference():
    ref = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert np.array_equal(predict(ref, np.zeros((4, 6, 2), np.int32), 16), ref)
    assert np.array_equal(predict(ref, np.zeros((8, 12, 2), np.int32), 8), ref)


@pytest.mark.parametrize("shift", [(3, -5), (-40, 70), (0, 1)])
def test_uniform_integer_motion_shifts_with_edge_extension(shift):
    ref = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    mv = np.broadcast_to(np.array(shift, np.int32) * 4, (8, 12, 2))
    rows = np.clip(np.arange(64) + shift[0], 0, 63)
    cols = np.clip(np.arange(96) + shift[1], 0, 95)
    assert np.array_equal(predict(ref, mv, 8), ref[rows][:, cols])


def test_predict_refuses_a_field_of_the_wrong_shape():
    ref = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(ValueError):
        predict(ref, np.zeros((4, 6, 2), np.int32), 16)
    with pytest.raises(ValueError):
        predict(ref, np.zeros((2, 3, 2), np.float32), 16)
    with pytest.raises(ValueError):
        predict(ref, np.zeros((4, 4, 2), np.int32), 12)
    with pytest.raises(ValueError):
        predict(ref.astype(np.int32), np.zeros((2, 3, 2), np.int32), 16)


def test_prediction_error_is_the_predictions_mse_per_block():
    rng = np.random.default_rng(3)
    ref, cur = (rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2))
    mv = rng.integers(-20, 20, (4, 6, 2)).astype(np.int32)
    err = prediction_error(cur, ref, mv, 8)
    diff = (cur.astype(np.float64) - predict(ref, mv, 8)) ** 2
    assert err.shape == (4, 6)
    assert err.mean() == pytest.approx(diff.mean())
    assert err[1, 2] == pytest.approx(diff[8:16, 16:24].mean())


# --- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("motion", [(7, -12), (3.25, -5.5), (-10.75, 20.5)])
def test_estimate_recovers_a_global_shift(motion):
    ref = smooth_scene(128, 160)
    cur = smooth_scene(128, 160, *motion)  # cur(y, x) = ref(y + dy, x + dx)
    mv = estimate(cur, ref, 16)
    assert mv.dtype == np.int32 and mv.shape == (8, 10, 2)
    interior = mv[1:-1, 2:-2]  # blocks whose search windows see no frame edge
    assert np.abs(interior - np.array(motion) * 4).max() <= 1
    if float(motion[0]).is_integer() and float(motion[1]).is_integer():
        assert (interior == np.array(motion) * 4).all()


def test_blocks_of_padding_cost_nothing_to_predict():
    def padded(img):  # as the codec pads a 100 x 136 picture
        return np.pad(img, ((0, 28), (0, 56), (0, 0)), mode="edge")

    ref, cur = padded(smooth_scene(100, 136)), padded(smooth_scene(100, 136, 3.25, -5.5))
    mv = estimate(cur, ref, 16, picture=(100, 136))
    diff = mv - motion_coding.median_predictor(mv)
    assert not diff[7:].any() and not diff[:, 9:].any()  # blocks wholly outside the picture
    assert np.abs(mv[1:6, 2:7] - (13, -22)).max() <= 1


def test_estimate_keeps_to_the_search_range():
    ref = smooth_scene(96, 128)
    cur = smooth_scene(96, 128, 12, -12)
    mv = estimate(cur, ref, 16, search=4)
    assert np.abs(mv).max() <= 16


def test_estimate_finds_nothing_to_do_in_a_still_frame():
    frame = smooth_scene(64, 96)
    assert not estimate(frame, frame, 8).any()


def test_estimated_motion_beats_zero_motion_on_a_real_pair(tables):
    first, second = BASKETBALL / "f001.png", BASKETBALL / "f002.png"
    if not (first.is_file() and second.is_file()):
        pytest.skip(f"BasketballPass frames not found in {BASKETBALL}")
    ref, cur = (np.asarray(Image.open(p).convert("RGB")) for p in (first, second))
    mv = estimate(cur, ref, 16)
    zero, moved = psnr(cur, ref), psnr(cur, predict(ref, mv, 16))
    assert moved > zero + 5  # measured: 24.3 dB -> 31.9 dB
    data = encode_motion(mv, tables)
    assert np.array_equal(decode_motion(data, *mv.shape[:2], tables), mv)
    assert len(data) < 450  # measured: 270 bytes for 390 blocks


# --- motion coding --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (6, 9), (0, 4)])
def test_motion_coding_round_trips_random_fields(tables, shape):
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    for mv in (rng.integers(-300, 300, shape + (2,)), rng.integers(-MAX_VECTOR, MAX_VECTOR + 1, shape + (2,))):
        mv = mv.astype(np.int32)
        out = decode_motion(encode_motion(mv, tables), *shape, tables)
        assert out.dtype == np.int32 and np.array_equal(out, mv)


def test_motion_coding_round_trips_an_estimated_field(tables):
    mv = estimate(smooth_scene(128, 160, 3.25, -5.5), smooth_scene(128, 160), 8)
    assert np.array_equal(decode_motion(encode_motion(mv, tables), 16, 20, tables), mv)


def test_a_smooth_field_costs_far_less_than_a_random_one(tables):
    rng = np.random.default_rng(4)
    smooth = np.broadcast_to(np.array([13, -22]), (16, 20, 2)).copy()
    smooth[5:9, 7:12] += (3, 1)  # one moving object
    random = rng.integers(-128, 129, (16, 20, 2))
    assert 3 * len(encode_motion(smooth, tables)) < len(encode_motion(random, tables))


def test_the_chosen_table_codes_in_the_fewest_words(tables):
    rng = np.random.default_rng(5)
    for values in (rng.integers(-3, 4, 300), np.round(rng.laplace(0, 20, 300)), np.full(300, 2000)):
        sizes = []
        for t in range(len(tables)):
            encoder = constriction.stream.queue.RangeEncoder()
            encode_symbols(encoder, values, np.full(values.size, t), tables)
            sizes.append(encoder.num_bits())
        assert sizes[best_table(values, tables)] <= min(sizes) + 32


def test_damaged_motion_streams_raise_format_error(tables):
    mv = np.round(np.random.default_rng(6).laplace(0, 6, (12, 15, 2))).astype(np.int32)
    data = encode_motion(mv, tables)
    damaged = [b"", b"\x03", data[:-1], data[:2] + b"\x00\x00\x00\x00", data + b"\x00\x00\x00\x00",
               bytes([len(tables)]) + data[1:], b"\x00\xff" + data[2:]]
    damaged += [data[:k] for k in range(2, len(data), 4)]  # every truncation at a word boundary
    for i in range(2, len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << (i % 8)
        damaged.append(bytes(flipped))
    for bad in damaged:
        with pytest.raises(FormatError):
            decode_motion(bad, 12, 15, tables)


def test_vectors_decoded_beyond_the_limit_raise_format_error(tables, monkeypatch):
    mv = np.zeros((2, 3, 2), np.int32)
    mv[1, 2] = (0, 4 * MAX_VECTOR)  # only a crafted stream holds this
    monkeypatch.setattr(motion_coding, "MAX_VECTOR", 8 * MAX_VECTOR)
    data = encode_motion(mv, tables)
    monkeypatch.undo()
    with pytest.raises(FormatError):
        decode_motion(data, 2, 3, tables)


def test_encode_motion_refuses_what_it_cannot_code(tables):
    with pytest.raises(ValueError):
        encode_motion(np.full((2, 2, 2), MAX_VECTOR + 1, np.int32), tables)
    with pytest.raises(ValueError):
        encode_motion(np.zeros((2, 2, 2), np.float32), tables)
    with pytest.raises(ValueError):
        encode_motion(np.zeros((2, 2, 3), np.int32), tables)
