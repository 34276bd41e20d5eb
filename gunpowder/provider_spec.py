"""1.x module path of `ProviderSpec`."""

from .spec import ProviderSpec

__all__ = ["ProviderSpec"]
