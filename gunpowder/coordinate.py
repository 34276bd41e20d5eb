"""1.x module path of `Coordinate` (funlib.geometry's)."""

from .geometry import Coordinate

__all__ = ["Coordinate"]
