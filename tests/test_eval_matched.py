"""`lic eval --target-bpp`: codecs measured at matched rates."""

import pytest

from helpers import photo_like
from lic.errors import InputError
from lic.eval.codecs import resolve
from lic.eval.matched import MatchedRate, nearest_choice, parse_targets

IMAGE = photo_like(64, 96, seed=11)


def test_targets_parse_sorted_and_bad_lists_are_user_errors():
    assert parse_targets("0.5,0.1, 0.25") == (0.1, 0.25, 0.5)
    for bad in ("", "a,b", "0,0.5", "-1", "100"):
        with pytest.raises(InputError):
            parse_targets(bad)


def test_bisection_keeps_the_file_nearest_the_target():
    sizes = [10, 20, 40, 80, 160]  # bytes for parameters 0..4
    calls = []

    def encode(p):
        calls.append(p)
        return bytes(sizes[p])

    assert len(nearest_choice(encode, list(range(5)), 8 * 70)) == 80
    assert len(nearest_choice(encode, list(range(5)), 8 * 1000)) == 160 and len(nearest_choice(encode, list(range(5)), 8)) == 10
    assert len(set(calls)) <= 5


@pytest.mark.parametrize("name, tolerance", [("webp", 0.15), ("lic-hyperprior", 0.015)])
def test_a_matched_codec_lands_near_each_target(name, tolerance):
    codec = MatchedRate(resolve(name), (0.4, 1.0))
    assert codec.name == f"{name}@bpp" and codec.qualities == (400, 1000)
    for quality in codec.qualities:
        data = codec.encode(IMAGE, quality)
        bpp = 8 * len(data) / (64 * 96)
        assert abs(bpp / (quality / 1000) - 1) <= tolerance
        assert codec.decode(data).shape == IMAGE.shape


def test_effort_and_matched_rates_are_refused_together():
    with pytest.raises(InputError, match="cannot be combined"):
        MatchedRate(resolve("lic-hyperprior@effort1"), (0.5,))
