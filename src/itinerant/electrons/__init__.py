"""Electron solvers for the s-d model: the Hamiltonian, occupations, exact diagonalisation, KPM."""

from .exact import ElectronState, ExactSolver, GrandCanonicalState
from .kpm import KPMSolver, KPMState

__all__ = ["ExactSolver", "ElectronState", "GrandCanonicalState", "KPMSolver", "KPMState"]
