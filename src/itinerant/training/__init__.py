"""Training machine-learning force fields on exact data (``itinerant train``)."""

from .config import TRAIN_SCHEMA, load_train_config
from .loop import train

__all__ = ["train", "TRAIN_SCHEMA", "load_train_config"]
