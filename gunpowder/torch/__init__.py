"""PyTorch for gunpowder: `Train` and `Predict` nodes and `Dataset` for `DataLoader`/DDP."""

from .checkpoint import latest_checkpoint, load_checkpoint
from .dataset import Dataset
from .device import resolve_device
from .predict import Predict
from .train import Train

__all__ = ["Train", "Predict", "Dataset", "latest_checkpoint", "load_checkpoint", "resolve_device"]
