"""README's Quick start runs as written: every line, in order, in a fresh copy of samples/."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from helpers import REPO, SAMPLES, run_lic


def quick_start_lines() -> list[str]:
    """The commands of README's Quick start block, comments stripped."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", readme, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_every_quick_start_line_runs_as_written(tmp_path, monkeypatch):
    lines = quick_start_lines()
    assert any("clip" in line for line in lines) and all(line.startswith(("lic ", "python -m lic")) for line in lines)
    shutil.copytree(SAMPLES, tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    for line in lines:
        args = shlex.split(line)
        if args[0] == "python":
            r = subprocess.run([sys.executable, *args[1:]], capture_output=True, text=True)
            assert r.returncode == 0, (line, r.stderr)
            continue
        r = run_lic(*args[1:])
        assert r.exit_code == 0, (line, r.output)
    decoded = Image.open(tmp_path / "samples" / "landscape.decoded.png")
    assert decoded.size == Image.open(SAMPLES / "landscape.png").size and (tmp_path / "tiny.lic").is_file()
    assert (tmp_path / "out.mkv").is_file() and len(list((tmp_path / "frames").glob("*.png"))) == 8
    assert json.loads(run_lic("info", "c.lic", "--json").output)["frames"] == 8
