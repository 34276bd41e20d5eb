"""1.x module path of `Array` and `ArrayKey`/`ArrayKeys`."""

from .batch import Array
from .spec import ArrayKey, ArrayKeys

__all__ = ["Array", "ArrayKey", "ArrayKeys"]
