"""Rate control (`lic.rate`): targets met with real files that decode to what was reported."""

from __future__ import annotations

import numpy as np
import pytest

import lic
from helpers import photo_like, run_lic
from lic import bitstream
from lic.errors import FormatError, InputError
from lic.eval.metrics import psnr
from lic.rate import BPP_TOLERANCE, Target, compress_to

RGB = photo_like(96, 160, seed=7)


def _decoded_psnr(data: bytes) -> float:
    return psnr(RGB, np.asarray(lic.decompress(data).convert("RGB")))


@pytest.mark.parametrize("bpp", [0.4, 0.93, 1.7])
def test_a_bpp_target_is_met_within_the_tolerance(bpp):
    data, choice = compress_to(RGB, Target("bpp", bpp))
    real = 8 * len(data) / RGB[..., 0].size
    assert abs(real - bpp) <= BPP_TOLERANCE * bpp and real == choice.bpp
    assert _decoded_psnr(data) == pytest.approx(choice.psnr, abs=1e-9)


@pytest.mark.parametrize("budget", [900, 2345, 5000])
def test_max_bytes_is_never_exceeded_and_little_is_left_unused(budget):
    data, choice = compress_to(RGB, Target("bytes", budget))
    assert len(data) <= budget and choice.nbytes == len(data)
    assert len(data) >= 0.95 * budget  # steps of about 1 % in rate leave little unused


def test_a_psnr_target_is_reached_by_a_file_one_step_coarser_would_miss():
    data, choice = compress_to(RGB, Target("psnr", 31.0))
    assert _decoded_psnr(data) >= 31.0 and _decoded_psnr(data) == pytest.approx(choice.psnr, abs=1e-9)
    if choice.step < 64:
        coarser, _ = compress_to(RGB, Target("bytes", len(data) - 1))
        assert _decoded_psnr(coarser) < 31.0


@pytest.mark.parametrize("target, nearest", [(Target("bpp", 0.001), "bpp"), (Target("bpp", 50.0), "bpp"),
                                             (Target("bytes", 20), "bytes"), (Target("psnr", 80.0), "dB")])
def test_targets_out_of_reach_name_the_nearest_reachable_value(target, nearest):
    with pytest.raises(InputError, match=f"out of reach for this image; the nearest reachable is [0-9.,]+ {nearest}"):
        compress_to(RGB, target)


def test_stepped_files_are_version_2_and_unstepped_ones_version_1():
    versions = {compress_to(RGB, Target("bpp", b))[0][4] for b in (0.5, 0.8, 1.1, 1.4)}
    assert versions <= {1, 2} and 2 in versions


def test_a_crafted_step_code_ends_in_one_clear_error():
    data, choice = compress_to(RGB, Target("bpp", 0.8))
    header, streams = bitstream.unpack(data)
    for step in (65, -200):
        header.step = step
        with pytest.raises(FormatError, match="quantisation step code"):
            lic.decompress(bitstream.pack(header, streams))


def test_a_step_in_a_vq_file_is_refused():
    header, streams = bitstream.unpack(lic.compress(RGB, quality=2, model="vq"))
    header.step = 3
    with pytest.raises(FormatError, match="quantisation step in a vq file"):
        lic.decompress(bitstream.pack(header, streams))


def test_cli_target_bpp_reports_the_choice_and_writes_a_decodable_file(tmp_path):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.fromarray(RGB).save(src)
    result = run_lic("encode", str(src), "--target-bpp", "0.9", "-o", str(tmp_path / "a.lic"))
    assert result.exit_code == 0 and "(quality " in result.output and ", step " in result.output
    assert abs(8 * (tmp_path / "a.lic").stat().st_size / RGB[..., 0].size - 0.9) <= BPP_TOLERANCE * 0.9


@pytest.mark.parametrize("args, message", [
    (["--target-bpp", "0.5", "--max-bytes", "900"], "give one of --target-bpp, --target-psnr and --max-bytes"),
    (["--target-bpp", "0.5", "--effort", "1"], "cannot be combined"),
    (["--target-bpp", "0.0001"], "out of reach for this image; the nearest reachable is"),
])
def test_cli_refuses_bad_targets_in_one_line(tmp_path, args, message):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.fromarray(RGB).save(src)
    result = run_lic("encode", str(src), "-o", str(tmp_path / "a.lic"), *args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "a.lic").exists()
