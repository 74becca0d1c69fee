"""Command line: ``itinerant <command>``.  Each command lives in its own module."""

from .app import app
from . import solve  # noqa: F401  (registers the command)
from . import generate  # noqa: F401
from . import train  # noqa: F401
from . import simulate  # noqa: F401
from . import analyze  # noqa: F401
from . import demo  # noqa: F401
from . import bench  # noqa: F401


def main() -> None:
    app()
