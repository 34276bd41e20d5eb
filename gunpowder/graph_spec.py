"""1.x module path of `GraphSpec`."""

from .spec import GraphSpec

__all__ = ["GraphSpec"]
