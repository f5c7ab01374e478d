"""Writing outputs safely: never half-written, never over an existing file unless forced."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from lic.errors import InputError


def check_writable(path: Path, force: bool) -> None:
    """Fails before any work is done if `path` exists (and not `force`) or cannot be made."""
    if path.exists() and not force:
        raise InputError(f"{path}: already exists (use --force to overwrite)")
    if path.is_dir():
        raise InputError(f"{path}: is a folder")
    if not path.parent.exists():
        raise InputError(f"{path.parent}: no such folder")


def check_outputs(inputs: list[Path], outputs: list[Path], force: bool) -> None:
    """Fails before any work is done if an output would replace an input (even with --force:
    that loses the source), if two inputs map to one output (one result would silently
    replace the other), or if any output cannot be written."""
    sources = {p.resolve(): p for p in inputs}
    claimed: dict[Path, Path] = {}
    for src, dst in zip(inputs, outputs):
        target = dst.resolve()
        if target in sources:
            raise InputError(f"{dst}: is an input of this command; refusing to write over it")
        if target in claimed:
            raise InputError(f"{claimed[target]} and {src} would both be written to {dst}; rename one or code them separately")
        claimed[target] = src
        check_writable(dst, force)


def give_default_permissions(path: "str | Path") -> None:
    """Files made by mkstemp or safetensors are 0600 (folders by mkdtemp 0700); users expect what
    their umask gives."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_output(path: Path, force: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write to (in any way, e.g. streaming or by a muxer);
    renamed into place when the block ends without an exception, removed otherwise. Nothing
    half-written is ever seen at `path`."""
    check_writable(path, force)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # its message would name the temporary file, which the user never asked for
        raise InputError(f"{path}: cannot write here ({e.strerror})") from None
    os.close(fd)
    try:
        give_default_permissions(tmp)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes, force: bool = False) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it into place."""
    with atomic_output(path, force) as tmp:
        tmp.write_bytes(data)
