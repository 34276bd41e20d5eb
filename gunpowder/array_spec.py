"""1.x module path of `ArraySpec`."""

from .spec import ArraySpec

__all__ = ["ArraySpec"]
