"""Physics of trajectories: order parameters, structure factors and domain growth per lattice.

``triangular``: tetrahedral (chiral, four-sublattice) order and its coarsening.  ``square``:
ferromagnetic clusters in a Neel background (lightly hole-doped double exchange).  Each lattice's
module provides ``analyze_cli(paths, out, window=None)``, which ``itinerant analyze`` dispatches to
by the trajectory's ``lattice`` attribute (:data:`itinerant.cli.analyze.ANALYSES`).
"""

from . import square, triangular

__all__ = ["square", "triangular"]
