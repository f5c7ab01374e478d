"""The `lic` command: `app` lives in `app.py`; each other module adds subcommands to it."""

from lic.cli import bench, codec, evaluate, model, train  # noqa: F401  (registers the subcommands)
from lic.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
