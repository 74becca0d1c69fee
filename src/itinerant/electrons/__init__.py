"""Electron solvers for the s-d model: the Hamiltonian, occupations, exact diagonalisation, KPM."""

from .exact import ElectronState, ExactSolver

__all__ = ["ExactSolver", "ElectronState"]
