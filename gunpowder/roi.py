"""1.x module path of `Roi` (funlib.geometry's)."""

from .geometry import Roi

__all__ = ["Roi"]
