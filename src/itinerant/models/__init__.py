"""Machine-learning force fields: the local-energy network, model files and shipped models."""

from .canonical import ChemicalPotentialError
from .files import FORMAT_VERSION, ModelFileError
from .forcefield import MLForceField
from .network import SiteEnergyNet

__all__ = ["MLForceField", "SiteEnergyNet", "ModelFileError", "FORMAT_VERSION",
           "ChemicalPotentialError"]
