"""Command line: ``itinerant <command>``.  Each command lives in its own module."""

from .app import app
from . import solve  # noqa: F401  (registers the command)


def main() -> None:
    app()
