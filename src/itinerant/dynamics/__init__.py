"""Landau-Lifshitz-Gilbert spin dynamics: integrators, thermostat, runs, checkpoints, initial states."""

from .checkpoint import Checkpoint, checkpoint_path
from .initial import STATE_NAMES, initial_state
from .integrators import STEPPERS, get_stepper, heun_step, rk4_step, sib_step
from .llg import DEFAULT_INTEGRATOR, LLG, NonFiniteError, Trajectory, resolve_integrator
from .noise import ThermalNoise, noise_variance

__all__ = ["LLG", "Trajectory", "NonFiniteError", "DEFAULT_INTEGRATOR", "resolve_integrator",
           "STEPPERS", "get_stepper", "sib_step", "heun_step", "rk4_step", "ThermalNoise",
           "noise_variance", "Checkpoint", "checkpoint_path", "initial_state", "STATE_NAMES"]
