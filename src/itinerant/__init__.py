"""itinerant: machine-learning force fields and large-scale spin dynamics of itinerant magnets.

    import itinerant as it
    lat = it.Lattice.triangular(12)
    model = it.SDModel(lat, t=(1.0,), J=2.0, filling=0.25)
    E, h = it.ExactSolver(model).energy_and_fields(spins)
"""

from ._version import __version__
from .dynamics import LLG, Trajectory
from .electrons import ElectronState, ExactSolver, KPMSolver
from .lattice import Lattice
from .model import SDModel
from .models import MLForceField
from .symmetry import PointGroup

__all__ = ["__version__", "Lattice", "SDModel", "ExactSolver", "ElectronState", "PointGroup", "LLG",
           "Trajectory", "MLForceField", "KPMSolver"]
