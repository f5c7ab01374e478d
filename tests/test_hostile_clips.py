"""What a new user and a hostile tester tried on clips and the command line (issue 20): each
ends in one clear line on stderr and a non-zero exit, with nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import lic
from helpers import SAMPLES, assert_one_line_error, run_lic
from lic.errors import InputError
from lic.video.container import VideoHeader, frame_rate


@pytest.fixture()
def sample_clip(tmp_path):
    path = tmp_path / "clip.mp4"
    shutil.copy(SAMPLES / "clip.mp4", path)
    return path


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fps", [float("inf"), float("nan"), -0.0, 1e-300, 3e9, 2**31, Fraction(1, 2**31)])
def test_frame_rates_beyond_what_writers_take_are_input_errors(fps):
    with pytest.raises(InputError, match="frame rate"):
        frame_rate(fps)


@pytest.mark.parametrize("fps, expected", [(2**31 - 1, Fraction(2**31 - 1)), (29.97002997, Fraction(30000, 1001)),
                                           (Fraction(1, 10**6), Fraction(1, 10**6))])
def test_frame_rates_within_what_writers_take_are_kept(fps, expected):
    assert frame_rate(fps) == expected


@pytest.mark.parametrize("fps", ["inf", "3e9", "1e12", "2147483648"])
def test_a_frame_rate_no_writer_takes_is_refused_before_coding(sample_clip, fps):
    """3e9 was coded into a clip that could not be decoded to a video file; 1e12 failed in
    struct.pack after coding every frame; inf and nan were tracebacks."""
    r = run_lic("encode", sample_clip, "--fps", fps, "-q", 1, "-o", sample_clip.with_name("c.lic"))
    assert_one_line_error(r, "frame rate")
    assert _listing(sample_clip.parent) == ["clip.mp4"]


@pytest.mark.parametrize("args, option", [
    (["--fps", "0"], "--fps"), (["--fps", "-0"], "--fps"), (["--fps", "1e-300"], "--fps"), (["--fps", "nan"], "--fps"),
    (["--gop", "0"], "--gop"), (["--max-frames", "-1"], "--max-frames"),
])
def test_option_range_errors_are_one_line(sample_clip, args, option):
    r = run_lic("encode", sample_clip, *args, "-q", 1)
    assert r.exit_code == 2 and r.output.startswith("lic: error:") and r.output.count("\n") == 1, r.output
    assert option in r.output and "Usage" not in r.output
    assert _listing(sample_clip.parent) == ["clip.mp4"]


def test_unknown_commands_and_missing_arguments_are_one_line():
    for args in (["bogus"], ["encode"]):
        r = run_lic(*args)
        assert r.exit_code == 2 and r.output.startswith("lic: error:") and r.output.count("\n") == 1, r.output


def test_an_output_suffix_that_contradicts_the_output_is_refused(sample_clip, tmp_path):
    assert_one_line_error(run_lic("encode", sample_clip, "-q", 1, "-o", tmp_path / "clip.png"), "writes .lic files")
    second = tmp_path / "other.mp4"
    shutil.copy(sample_clip, second)
    r = run_lic("encode", sample_clip, second, "-q", 1, "-o", tmp_path / "one.lic")
    assert_one_line_error(r, "one.lic: names a .lic file, but 2 inputs need -o to be a folder")
    assert _listing(tmp_path) == ["clip.mp4", "other.mp4"]


@pytest.mark.parametrize("content", [b"", b"abc", b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_decoding_a_file_that_is_no_lic_file_says_so(tmp_path, content):
    (tmp_path / "x.lic").write_bytes(content)
    assert_one_line_error(run_lic("decode", tmp_path / "x.lic", "-o", tmp_path / "x.mkv"), "not a .lic file")
    assert _listing(tmp_path) == ["x.lic"]


def test_a_huge_clip_header_is_reported_at_the_size_it_claims(tmp_path):
    header = VideoHeader(3, 1, b"\0" * 4, 65535, 65535, Fraction(25), 1, 32, 1, 1)
    (tmp_path / "huge.lic").write_bytes(header.pack())
    r = run_lic("decode", tmp_path / "huge.lic", "-o", tmp_path / "out.mkv")
    assert_one_line_error(r, "a 65535x65535 image")


def test_an_unwritable_output_is_named_not_its_temporary_file():
    r = run_lic("encode", SAMPLES / "clip.mp4", "-q", 1, "--max-frames", 1, "-o", "/proc/x.lic")
    assert_one_line_error(r, "/proc/x.lic: cannot write here")
    assert ".tmp" not in r.output


def test_clip_decoding_shows_progress(sample_clip, tmp_path):
    assert run_lic("encode", sample_clip, "-q", 1, "--max-frames", 3, "-o", tmp_path / "c.lic").exit_code == 0
    r = run_lic("decode", str(tmp_path / "c.lic"), "-o", str(tmp_path / "c.mkv"))
    assert r.exit_code == 0, r.output
    assert "3/3" in r.stderr and "fps=" in r.stderr and "frame" in r.stderr


@pytest.mark.parametrize("module", ["lic", "lic.cli"])
def test_python_dash_m_runs_the_command(module):
    r = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("lic "), r.stderr


def test_info_models_and_help_do_not_load_torch(tmp_path):
    """Start-up: these commands read headers and metadata only, so they must not pay for
    importing torch and the networks (seconds on a loaded machine)."""
    header = VideoHeader(3, 1, b"\0" * 4, 64, 64, Fraction(25), 0, 32).pack()
    (tmp_path / "empty.lic").write_bytes(header)
    script = ("import sys; from lic.cli import app\n"
              "for args in (['--help'], ['models'], ['info', sys.argv[1]], ['encode', '--help']):\n"
              "    try: app(args)\n"
              "    except SystemExit: pass\n"
              "print(sorted(m for m in ('torch', 'compressai', 'av', 'lic.api') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "empty.lic")], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr


def test_a_frame_side_the_reader_refuses_is_refused_before_coding(tmp_path):
    """Under the pixel limit, but a side of 2^16 or more: the clip could be written, not read."""
    with pytest.raises(InputError, match="frame sides must be below 65536"):
        lic.compress_video([np.zeros((1, 65536, 3), np.uint8)], tmp_path / "wide.lic", 1, fps=25)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("numerator", [2**31, 2**32 - 1])
def test_decoding_a_clip_whose_rate_no_writer_takes_is_one_line(tmp_path, numerator):
    """Was an OverflowError in PyAV's add_stream (2^31 - 1 decoded)."""
    header = VideoHeader(3, 1, b"\0" * 4, 64, 64, Fraction(25), 1, 32)
    header.fps = Fraction(numerator)
    (tmp_path / "fast.lic").write_bytes(header.pack())
    assert_one_line_error(run_lic("decode", tmp_path / "fast.lic", "-o", tmp_path / "out.mkv"), "frame rate")
    assert _listing(tmp_path) == ["fast.lic"]
