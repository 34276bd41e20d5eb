"""1.x module path of `BatchRequest`."""

from .spec import BatchRequest

__all__ = ["BatchRequest"]
