"""Training data: sampling protocols, and their generation on Dask into HDF5 (``itinerant generate``)."""

from .generate import DataFile, Summary, generate, run_task, sort_rows
from .protocols import PROTOCOLS, RUN_SCHEMA, Run, Task, build_tasks, load_run, parse_run

__all__ = ["generate", "load_run", "parse_run", "run_task", "sort_rows", "build_tasks", "DataFile",
           "Summary", "Run", "Task", "PROTOCOLS", "RUN_SCHEMA"]
