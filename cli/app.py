"""The Typer application and the error handling every subcommand shares."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable

import typer
from typer.core import TyperGroup

from lic.errors import InputError, LicError

try:  # typer 0.2x carries its own copy of Click; earlier versions raise Click's exceptions
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:
    from click.exceptions import ClickException, NoArgsIsHelpError


class OneLineErrors(TyperGroup):
    """Usage errors (an option out of range, a missing argument, an unknown command) as one
    line on stderr, like every other error, instead of Click's usage block; exit code 2."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as e:
            e.show()  # `lic` alone: the help, as before
            sys.exit(e.exit_code)
        except ClickException as e:
            typer.echo(f"lic: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("lic: error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="lic",
    cls=OneLineErrors,
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
