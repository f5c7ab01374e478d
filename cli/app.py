"""The Typer application and the error handling every subcommand shares."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import typer

from lic.errors import InputError, LicError

app = typer.Typer(
    name="lic",
    help="Learned image compression with real bitstreams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from lic import __version__

        typer.echo(f"lic {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version of lic and exit."),
) -> None:
    """Learned image compression with real bitstreams."""


def fail(message: str, code: int = 1) -> "typer.Exit":
    typer.echo(f"lic: error: {message}", err=True)
    return typer.Exit(code)


def user_errors(command: Callable) -> Callable:
    """Turns the errors a user can cause into one line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LicError as e:
            raise fail(str(e)) from None
        except OSError as e:
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            raise fail(f"{where}{e.strerror or e}") from None
        except MemoryError:
            raise fail("out of memory (try a smaller image or --device cuda)") from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


def expand_inputs(inputs: list[Path], suffixes: set[str] | None, what: str = "input files") -> list[Path]:
    """Files as given; folders replaced by the matching files directly inside them."""
    files = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and (suffixes is None or f.suffix.lower() in suffixes))
            if not found:
                raise InputError(f"{p}: no {what} in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return files
