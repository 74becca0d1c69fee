"""The ``itinerant`` Typer application; sub-command modules register on :data:`app`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from .._version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Machine-learning force fields and spin dynamics of itinerant magnets.")
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"itinerant {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    pass


def fail(message: str, code: int = 2):
    """Print an error in red and exit with ``code`` (no traceback for user errors)."""
    from rich.markup import escape

    # escape: run-file messages name tables like "[model] J", which are not markup
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def run_guarded(fn, *args, **kwargs):
    """Call ``fn``; turn user errors (ValueError, FileNotFoundError, KeyError) into clean exits."""
    from ..config import ConfigError

    try:
        return fn(*args, **kwargs)
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as exc:
        fail(str(exc).strip("'\""))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
