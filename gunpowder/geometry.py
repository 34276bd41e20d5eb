"""World-unit geometry: funlib.geometry's `Coordinate` and `Roi`, the field's shared classes.

gunpowder 1.x, daisy and funlib.persistence use the same classes, so ROIs pass between them
without conversion. `None` marks an unbounded axis. What funlib lacks lives here as functions:
`roi_key` (a hashable value for a ROI; funlib's Roi is mutable and unhashable) and
`as_coordinate` (coerce a tuple, list or array).

Example::

    >>> from gunpowder.geometry import Coordinate, Roi
    >>> roi = Roi((0, 0, 0), (400, 40, 40))
    >>> roi / Coordinate(40, 4, 4)
    [0:10, 0:10, 0:10] (10, 10, 10)
    >>> (6,) + roi.shape   # tuples concatenate, as in 1.x
    (6, 400, 40, 40)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from funlib.geometry import Coordinate, Roi

__all__ = ["Coordinate", "Roi", "as_coordinate", "is_multiple_of", "roi_key"]


def as_coordinate(value: Iterable[Any] | Coordinate) -> Coordinate:
    """`value` as a Coordinate (a Coordinate is returned as it is)."""
    return value if isinstance(value, Coordinate) else Coordinate(value)


def roi_key(roi: Roi | None) -> tuple | None:
    """A hashable value equal for equal ROIs (offset and shape as tuples); None for None."""
    if roi is None:
        return None
    return (tuple(roi.offset), tuple(roi.shape))


def is_multiple_of(value: Coordinate, step: Iterable[int]) -> bool:
    """Every bounded entry of `value` is a multiple of `step` (None, unbounded, always is).

    >>> is_multiple_of(Coordinate(None, 8), Coordinate(4, 4))
    True
    """
    return all(v is None or s is None or v % s == 0 for v, s in zip(value, step))
