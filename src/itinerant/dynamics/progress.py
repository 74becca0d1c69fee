"""Rich progress bar for LLG runs: simulated time, steps per second and time remaining."""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn,
                           TimeRemainingColumn)
from rich.text import Text


class _SimTime(ProgressColumn):
    def render(self, task) -> Text:
        dt = task.fields["dt"]
        return Text(f"t = {task.completed * dt:.6g} / {task.total * dt:.6g}")


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        return Text("-- steps/s" if task.speed is None else f"{task.speed:,.1f} steps/s")


@contextmanager
def progress_bar(steps: int, start: int, dt: float, enabled: bool = True, description: str = "LLG"):
    """Yield ``update(step)``, which moves a bar over ``steps`` steps (starting at ``start``)."""
    if not enabled:
        yield lambda step: None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), _SimTime(),
               _Rate(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=steps, completed=start, dt=dt)
        last = [0.0]

        def update(step: int) -> None:
            now = time.monotonic()  # throttle: fast steps would otherwise spend time redrawing
            if now - last[0] > 0.1 or step >= steps:
                last[0] = now
                bar.update(task, completed=step)

        yield update
