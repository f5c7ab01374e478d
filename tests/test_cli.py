"""The `lic` command: through Typer's runner, and once as the installed console script."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers import photo_like, run_lic


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo_like(48, 80)).save(path)
    return path


def test_encode_info_decode(photo, tiny_model):
    r = run_lic("encode", photo, "-q", 2, "--model", tiny_model)
    assert r.exit_code == 0, r.output
    assert "bpp" in r.output and "PSNR" in r.output
    coded = photo.with_suffix(".lic")
    r = run_lic("info", coded)
    assert r.exit_code == 0 and "hyperprior" in r.output and "80" in r.output
    r = run_lic("decode", coded, "--model", tiny_model)
    assert r.exit_code == 0, r.output
    assert Image.open(photo.with_name("photo.decoded.png")).size == (80, 48)


def test_never_overwrites_without_force(photo, tiny_model):
    coded = photo.with_suffix(".lic")
    coded.write_bytes(b"precious")
    r = run_lic("encode", photo, "-q", 2, "--model", tiny_model)
    assert r.exit_code == 1 and "already exists" in r.output and "Traceback" not in r.output
    assert coded.read_bytes() == b"precious"
    assert run_lic("encode", photo, "-q", 2, "--model", tiny_model, "--force").exit_code == 0
    assert coded.read_bytes()[:4] == b"\x89LIC"


def test_failed_decode_leaves_no_output(tmp_path, tiny_model):
    bad = tmp_path / "bad.lic"
    bad.write_bytes(b"\x89LIC" + bytes(30))
    r = run_lic("decode", bad, "--model", tiny_model)
    assert r.exit_code == 1 and r.output.count("\n") <= 2 and "corrupted" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.lic"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["encode", "missing.png"], "no such file"),
        (["decode", "missing.lic"], "no such file"),
        (["info", "missing.lic"], "no such file"),
    ],
)
def test_missing_files(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_lic(*args)
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_foreign_file_and_unknown_format(tmp_path, photo, tiny_model):
    r = run_lic("info", photo)
    assert r.exit_code == 1 and "not a .lic file" in r.output
    run_lic("encode", photo, "-q", 2, "--model", tiny_model)
    r = run_lic("decode", photo.with_suffix(".lic"), "-o", tmp_path / "out.xyz", "--model", tiny_model)
    assert r.exit_code == 1 and "format" in r.output


def test_folder_batch(tmp_path, tiny_model):
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(3):
        Image.fromarray(photo_like(20 + i, 30, seed=i)).save(shots / f"s{i}.png")
    (shots / "notes.txt").write_text("not an image")
    r = run_lic("encode", shots, "-q", 2, "--model", tiny_model, "-o", tmp_path / "coded", "--no-verify")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "coded").iterdir()) == ["s0.lic", "s1.lic", "s2.lic"]
    r = run_lic("decode", tmp_path / "coded", "-o", tmp_path / "out", "--model", tiny_model)
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "out").iterdir())) == 3


def test_help_has_examples():
    for command in ("encode", "decode", "info", "models", "train"):
        r = run_lic(command, "--help")
        assert r.exit_code == 0 and "Example" in r.output, command


@pytest.mark.slow
def test_installed_console_script(photo, tiny_model):
    exe = shutil.which("lic")
    assert exe, "the lic console script is not installed"
    out = subprocess.run([exe, "encode", str(photo), "-q", "2", "--model", str(tiny_model)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([exe, "decode", str(photo.with_suffix(".lic"))], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.startswith("lic: error:") and "not installed" in out.stderr
    assert out.stderr.count("\n") == 1


def test_outputs_get_ordinary_permissions(photo, tiny_model):
    import os

    run_lic("encode", photo, "-q", 2, "--model", tiny_model, "--no-verify")
    mask = os.umask(0)
    os.umask(mask)
    assert photo.with_suffix(".lic").stat().st_mode & 0o777 == 0o666 & ~mask


def test_parallel_batch_writes_what_one_process_writes_and_reports_each_failure(tmp_path, tiny_model):
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(4):
        Image.fromarray(photo_like(40 + 8 * i, 56, seed=i)).save(shots / f"s{i}.png")
    for jobs in (1, 2):
        r = run_lic("encode", shots, "-q", 2, "--model", tiny_model, "-o", tmp_path / f"coded{jobs}", "-j", jobs)
        assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "coded1").iterdir())
    assert names == [f"s{i}.lic" for i in range(4)]
    for name in names:
        assert (tmp_path / "coded1" / name).read_bytes() == (tmp_path / "coded2" / name).read_bytes()
    (tmp_path / "coded2" / "s1.lic").write_bytes(b"LIC damaged")
    for jobs in (1, 2):
        r = run_lic("decode", tmp_path / "coded2", "-o", tmp_path / f"out{jobs}", "--model", tiny_model, "-j", jobs)
        assert r.exit_code == 1 and "1 of 4 files failed" in r.output and "s1.lic" in r.output
    for name in ("s0", "s2", "s3"):
        png = f"{name}.decoded.png"
        assert (tmp_path / "out1" / png).read_bytes() == (tmp_path / "out2" / png).read_bytes()
    assert not (tmp_path / "out2" / "s1.decoded.png").exists()


def test_jobs_run_the_files_in_worker_processes_with_the_closure_as_it_is():
    import os
    from pathlib import Path

    from lic.cli.codec import in_workers

    pairs = [(Path(f"in{i}"), Path(f"out{i}")) for i in range(4)]
    results = dict(in_workers(pairs, lambda src, dst: f"{src} {os.getpid()}", 2))  # a lambda: not picklable
    assert sorted(results) == [src for src, _ in pairs]
    assert all(ok and line.startswith(f"{src} ") for src, (ok, line) in results.items())
    assert str(os.getpid()) not in {line.split()[1] for _, line in results.values()}
