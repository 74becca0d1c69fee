"""``itinerant train``: fit a machine-learning force field to exact data (one process or torchrun)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .app import app, console, run_guarded


@app.command()
def train(
    run_file: Path = typer.Argument(..., help=escape("TOML run file: [data], [split], [descriptor], "
                                                     "[network], [training], [output].")),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue from the output directory's checkpoint."),
    out: Path = typer.Option(None, "--out", "-o",
                             help=escape("Output directory (overrides [output] directory).")),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Show a progress bar."),
    threads: int = typer.Option(None, "--threads", help="Torch CPU threads per process."),
) -> None:
    """Train a force field; write the model, metrics.json, parity.png and loss.png.

    Data-parallel on several GPUs or CPU processes:
    torchrun --nproc-per-node=2 -m itinerant train RUN.toml
    """
    from ..training import load_train_config
    from ..training import train as run_train

    def _run():
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        cfg = load_train_config(run_file)
        if out is not None:
            cfg["output"]["directory"] = str(out.resolve())
        if progress is not None:
            cfg["output"]["progress"] = progress
        ff, metrics = run_train(cfg, resume=resume, console=console)
        if metrics is None:  # not process 0 of a data-parallel run
            return
        part = "test" if "test" in metrics else "validation"
        m = metrics[part]
        full, perp = m["fields"]["full"], m["fields"]["perpendicular"]
        console.print(
            f"wrote {cfg['output']['directory']}: best epoch {metrics['best_epoch']} of "
            f"{metrics['epochs']}; {part} set ({m['snapshots']} snapshots): field RMSE "
            f"{full['rmse']:.3e}, R^2 x/y/z {full['r2_x']:.4f}/{full['r2_y']:.4f}/{full['r2_z']:.4f}"
            f"; perpendicular RMSE {perp['rmse']:.3e}, R^2 {perp['r2']:.4f}; energy MAE per site "
            f"{m['energy']['mae_per_site']:.3e}"
            + (f"; density MAE {m['density']['mae']:.3e}, R^2 {m['density']['r2']:.4f}"
               if "density" in m else ""), highlight=False, soft_wrap=True)

    run_guarded(_run)
