"""``itinerant solve``: energy, fields and densities of spin configurations by exact diagonalisation."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import typer

from ..electrons import ExactSolver
from ..io import RowWriter, model_attrs, read_spins, write_attrs
from ..lattice import Lattice
from ..model import SDModel
from .app import app, console, run_guarded


@app.command()
def solve(
    spins: Path = typer.Argument(..., help="Spins: .npy (N,3)/(M,N,3) or HDF5 with dataset 'spins'."),
    lattice: str = typer.Option(..., help="square or triangular"),
    L: int = typer.Option(..., "--L", help="Linear lattice size (N = L*L)."),
    J: float = typer.Option(..., "--J", help="s-d coupling."),
    t: list[float] = typer.Option([1.0], "--t", help="Hopping of shell n; repeat for t2, t3."),
    filling: float = typer.Option(None, help="Electron filling N_e/(2N)."),
    mu: float = typer.Option(None, help="Chemical potential (instead of filling)."),
    kT: float = typer.Option(0.0, "--kT", help="Electron temperature."),
    normalize: bool = typer.Option(False, help="Rescale spins to unit length instead of refusing."),
    out: Path = typer.Option(None, "--out", "-o", help="Write HDF5 (spins, fields, energy, density)."),
) -> None:
    """Solve the electrons exactly for given spins; print the energy, write fields to HDF5."""

    def _run():
        model = SDModel(Lattice.from_name(lattice, L), t=tuple(t), J=J, filling=filling, mu=mu, kT=kT)
        s = read_spins(spins)
        solver = ExactSolver(model)
        st = solver.solve(s, normalize=normalize)
        energies = np.atleast_1d(st.energy)
        for k, e in enumerate(energies):
            print(f"snapshot {k}: energy {e:.12f}  per site {e / model.lattice.N:.12f}")
        if out is not None:
            stack = lambda a: a[None] if np.ndim(st.energy) == 0 else a  # noqa: E731
            N = model.lattice.N
            with h5py.File(out, "w") as h5:
                write_attrs(h5, model_attrs(model, **solver.settings()))
                w = RowWriter(h5, {"spins": (N, 3), "fields": (N, 3), "energy": (),
                                   "density": (N,)})
                s_all = stack(np.asarray(s, float) / np.linalg.norm(s, axis=-1, keepdims=True))
                for k in range(len(energies)):
                    w.append(spins=s_all[k], fields=stack(st.fields)[k], energy=energies[k],
                             density=stack(st.density)[k])
            console.print(f"wrote {out}")

    run_guarded(_run)
