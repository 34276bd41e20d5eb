"""World-unit geometry: `Coordinate` (an integer tuple with element-wise maths) and `Roi`.

Both are immutable and hashable. `None` marks an unbounded dimension and propagates through
arithmetic, so an unbounded ROI can be intersected with a bounded one. As in gunpowder 1.x,
entries are truncated to integers (`int(x)`), and `dims`, `size`, `empty` and `unbounded` read
both as properties (`roi.dims`) and as the early 1.x methods (`roi.dims()`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Union

import numpy as np

Number = Union[int, float, None]


class DimensionMismatch(ValueError, AssertionError):
    """Two coordinates or ROIs of different dimensions were combined (1.x asserted this)."""


class _CallableInt(int):
    """An int that may also be called: `roi.dims` (later 1.x) and `roi.dims()` (1.0) agree."""

    __slots__ = ()

    def __call__(self) -> int:
        return int(self)


class _CallableBool(int):
    """A truth value that may also be called: `roi.empty` and `roi.empty()` agree."""

    __slots__ = ()

    def __call__(self) -> bool:
        return bool(self)

    def __repr__(self) -> str:
        return repr(bool(self))

    __str__ = __repr__


_TRUE = _CallableBool(1)
_FALSE = _CallableBool(0)


def _flag(value: bool) -> _CallableBool:
    return _TRUE if value else _FALSE


def _to_int(x: Any) -> int | None:
    if x is None:
        return None
    if isinstance(x, (float, np.floating)):
        if math.isinf(x):
            return None
        if math.isnan(x):
            raise ValueError("Coordinate entries can not be NaN")
    return int(x)  # truncates towards zero, as gunpowder 1.x does


class Coordinate(tuple):
    """A tuple of integers (or `None` for unbounded) with element-wise arithmetic.

    `Coordinate((40, 4, 4))` and `Coordinate(40, 4, 4)` are the same.
    """

    def __new__(cls, *args: Any) -> Coordinate:
        if len(args) == 1 and type(args[0]) in (tuple, Coordinate, list):
            if all(type(v) is int for v in args[0]):  # fast path: already plain ints
                return super().__new__(cls, args[0])
        if len(args) == 1 and isinstance(args[0], Iterable) and not isinstance(args[0], str):
            values = args[0]
        else:
            values = args
        if isinstance(values, np.ndarray):
            values = values.tolist()
        return super().__new__(cls, [_to_int(v) for v in values])

    @property
    def dims(self) -> int:
        return _CallableInt(len(self))

    def squeeze(self, dim: int = 0) -> Coordinate:
        return Coordinate(v for i, v in enumerate(self) if i != dim)

    def is_multiple_of(self, other: Iterable[int]) -> bool:
        other = Coordinate(other)
        self._check_dims(other)
        return all(a is None or b is None or a % b == 0 for a, b in zip(self, other))

    def _check_dims(self, other: tuple) -> None:
        if len(self) != len(other):
            raise DimensionMismatch(
                f"can not combine coordinates of different dimensions: {self} and {other}"
            )

    def _op(self, other: Any, op) -> Coordinate:
        if isinstance(other, (tuple, list, np.ndarray)):
            other = tuple(other)
            self._check_dims(other)
            return Coordinate(
                None if a is None or b is None else op(a, b) for a, b in zip(self, other)
            )
        if isinstance(other, (int, float, np.integer, np.floating)):
            return Coordinate(None if a is None else op(a, other) for a in self)
        return NotImplemented

    def __add__(self, other: Any) -> Coordinate:  # type: ignore[override]
        return self._op(other, lambda a, b: a + b)

    def __radd__(self, other: Any) -> Coordinate:
        return self._op(other, lambda a, b: b + a)

    def __sub__(self, other: Any) -> Coordinate:
        return self._op(other, lambda a, b: a - b)

    def __rsub__(self, other: Any) -> Coordinate:
        return self._op(other, lambda a, b: b - a)

    def __mul__(self, other: Any) -> Coordinate:  # type: ignore[override]
        return self._op(other, lambda a, b: a * b)

    def __rmul__(self, other: Any) -> Coordinate:  # type: ignore[override]
        return self._op(other, lambda a, b: b * a)

    def __truediv__(self, other: Any) -> Coordinate:
        # integer coordinates: division truncates (as in gunpowder 1.x)
        return self._op(other, lambda a, b: int(a / b))

    def __floordiv__(self, other: Any) -> Coordinate:
        return self._op(other, lambda a, b: a // b)

    def __mod__(self, other: Any) -> Coordinate:
        return self._op(other, lambda a, b: a % b)

    def __neg__(self) -> Coordinate:
        return Coordinate(None if a is None else -a for a in self)

    def __abs__(self) -> Coordinate:
        return Coordinate(None if a is None else abs(a) for a in self)

    def round_division(self, other: Iterable[int]) -> Coordinate:
        return self._op(tuple(other), lambda a, b: int(round(a / b)))

    def floor_division(self, other: Iterable[int]) -> Coordinate:
        return self._op(tuple(other), lambda a, b: a // b)

    def ceil_division(self, other: Iterable[int]) -> Coordinate:
        return self._op(tuple(other), lambda a, b: -(-a // b))

    def __repr__(self) -> str:
        return "(" + ", ".join(str(v) for v in self) + ("," if len(self) == 1 else "") + ")"

    __str__ = __repr__


class Roi:
    """An axis-aligned box in world units: `offset` (begin) and `shape`.

    `Roi((0, 0, 0), (400, 40, 40))`. `None` in a shape (or offset) marks an unbounded axis.
    """

    __slots__ = ("_offset", "_shape", "_hash")

    def __init__(
        self, offset: Iterable[Number] | None = None, shape: Iterable[Number] | None = None
    ):
        if offset is None and shape is None:
            raise ValueError("Roi needs an offset or a shape")
        if shape is None:
            shape = (None,) * len(tuple(offset))  # type: ignore[arg-type]
        if offset is None:
            offset = (None,) * len(tuple(shape))
        off = Coordinate(offset)
        shp = Coordinate(shape)
        if len(off) != len(shp):
            raise DimensionMismatch(f"Roi offset {off} and shape {shp} differ in dimensions")
        # an unbounded axis has both offset and shape None
        off = Coordinate(None if s is None else o for o, s in zip(off, shp))
        shp = Coordinate(None if o is None else s for o, s in zip(off, shp))
        if any(s is not None and s < 0 for s in shp):
            raise ValueError(f"Roi shape must not be negative, got {shp}")
        object.__setattr__(self, "_offset", off)
        object.__setattr__(self, "_shape", shp)
        object.__setattr__(self, "_hash", hash((off, shp)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Roi is immutable; use shift/grow/intersect to derive a new one")

    def __reduce__(self):
        return (Roi, (tuple(self._offset), tuple(self._shape)))

    # accessors -------------------------------------------------------------------------
    @property
    def offset(self) -> Coordinate:
        return self._offset

    @property
    def begin(self) -> Coordinate:
        return self._offset

    @property
    def shape(self) -> Coordinate:
        return self._shape

    @property
    def end(self) -> Coordinate:
        return self._offset + self._shape

    @property
    def center(self) -> Coordinate:
        return self._offset + self._shape / 2

    @property
    def dims(self) -> int:
        return _CallableInt(len(self._shape))

    @property
    def size(self) -> int | None:
        if self.unbounded:
            return None
        return _CallableInt(int(np.prod(self._shape, dtype=np.int64)) if self.dims else 0)

    @property
    def empty(self) -> bool:
        return _flag(any(s == 0 for s in self._shape))

    @property
    def unbounded(self) -> bool:
        return _flag(any(s is None for s in self._shape))

    def get_offset(self) -> Coordinate:
        return self.offset

    def get_begin(self) -> Coordinate:
        return self.begin

    def get_end(self) -> Coordinate:
        return self.end

    def get_shape(self) -> Coordinate:
        return self.shape

    def get_center(self) -> Coordinate:
        return self.center

    def set_offset(self, offset: Iterable[Number]) -> Roi:
        return Roi(offset, self._shape)

    def set_shape(self, shape: Iterable[Number]) -> Roi:
        return Roi(self._offset, shape)

    def copy(self) -> Roi:
        return self

    def to_slices(self) -> tuple[slice, ...]:
        return tuple(
            slice(None) if o is None else slice(o, o + s) for o, s in zip(self._offset, self._shape)
        )

    def get_bounding_box(self) -> tuple[slice, ...]:
        return self.to_slices()

    # algebra ----------------------------------------------------------------------------
    def _check(self, other: Roi) -> None:
        if self.dims != other.dims:
            raise DimensionMismatch(f"ROIs of different dimensions: {self} and {other}")

    def contains(self, other: Any) -> bool:
        """True if a point (Coordinate/tuple) or a whole ROI lies inside this ROI."""
        if isinstance(other, Roi):
            self._check(other)
            if other.empty:
                return self.contains(other.begin)
            for b, e, ob, oe in zip(self.begin, self.end, other.begin, other.end):
                if b is not None and (ob is None or ob < b):
                    return False
                if e is not None and (oe is None or oe > e):
                    return False
            return True
        point = tuple(other)
        if len(point) != self.dims:
            raise DimensionMismatch(f"point {point} and ROI {self} differ in dimensions")
        for b, e, p in zip(self.begin, self.end, point):
            if b is None:
                continue
            if p is None or p < b or p >= e:
                return False
        return True

    def __contains__(self, other: Any) -> bool:
        return self.contains(other)

    def intersects(self, other: Roi) -> bool:
        self._check(other)
        if self.empty or other.empty:
            return False
        for b, e, ob, oe in zip(self.begin, self.end, other.begin, other.end):
            if b is not None and ob is not None and (ob >= e or oe <= b):
                return False
        return True

    def intersect(self, other: Roi) -> Roi:
        self._check(other)
        if not self.intersects(other):
            return Roi((0,) * self.dims, (0,) * self.dims)
        begin, end = [], []
        for b, e, ob, oe in zip(self.begin, self.end, other.begin, other.end):
            if b is None:
                begin.append(ob)
                end.append(oe)
            elif ob is None:
                begin.append(b)
                end.append(e)
            else:
                begin.append(max(b, ob))
                end.append(min(e, oe))
        return Roi(begin, [None if b is None else e - b for b, e in zip(begin, end)])

    def union(self, other: Roi) -> Roi:
        self._check(other)
        if self.empty and other.empty:
            return Roi((0,) * self.dims, (0,) * self.dims)
        if self.empty:
            return other
        if other.empty:
            return self
        begin, end = [], []
        for b, e, ob, oe in zip(self.begin, self.end, other.begin, other.end):
            if b is None or ob is None:
                begin.append(None)
                end.append(None)
            else:
                begin.append(min(b, ob))
                end.append(max(e, oe))
        return Roi(begin, [None if b is None else e - b for b, e in zip(begin, end)])

    def shift(self, by: Iterable[Number] | Number) -> Roi:
        """This ROI moved by `by` (a coordinate, or one number for every axis)."""
        if isinstance(by, (int, float, np.integer, np.floating)):
            return Roi(self._offset + by, self._shape)
        return Roi(self._offset + Coordinate(by), self._shape)

    def grow(
        self, amount_neg: Iterable[Number] | Number = 0, amount_pos: Iterable[Number] | Number = 0
    ) -> Roi:
        """Grow by `amount_neg` towards lower and `amount_pos` towards higher coordinates."""
        neg = self._as_coord(amount_neg)
        pos = self._as_coord(amount_pos)
        return Roi(self._offset - neg, self._shape + neg + pos)

    def _as_coord(self, amount: Any) -> Coordinate:
        if amount is None:
            return Coordinate((0,) * self.dims)
        if isinstance(amount, (int, np.integer)):
            return Coordinate((int(amount),) * self.dims)
        c = Coordinate(amount)
        if len(c) != self.dims:
            raise DimensionMismatch(f"amount {c} and ROI {self} differ in dimensions")
        return Coordinate(0 if v is None else v for v in c)

    def snap_to_grid(self, voxel_size: Iterable[int], mode: str = "grow") -> Roi:
        """Align begin and end to multiples of `voxel_size`.

        mode "grow" (cover the ROI), "shrink" (stay inside it) or "closest".
        """
        vs = Coordinate(voxel_size)
        if len(vs) != self.dims:
            raise DimensionMismatch(f"voxel size {vs} and ROI {self} differ in dimensions")
        if mode not in ("grow", "shrink", "closest"):
            raise ValueError(f"snap_to_grid mode must be grow, shrink or closest, got {mode!r}")
        begin, end = [], []
        for b, e, v in zip(self.begin, self.end, vs):
            if b is None:
                begin.append(None)
                end.append(None)
                continue
            if mode == "grow":
                begin.append((b // v) * v)
                end.append(-(-e // v) * v)
            elif mode == "shrink":
                nb = -(-b // v) * v
                ne = (e // v) * v
                begin.append(nb)
                end.append(max(nb, ne))
            else:
                begin.append(int(round(b / v)) * v)
                end.append(int(round(e / v)) * v)
        return Roi(begin, [None if b is None else e - b for b, e in zip(begin, end)])

    def squeeze(self, dim: int = 0) -> Roi:
        return Roi(self._offset.squeeze(dim), self._shape.squeeze(dim))

    # operators --------------------------------------------------------------------------
    def __add__(self, other: Any) -> Roi:
        return self.shift(other)

    def __sub__(self, other: Any) -> Roi:
        if isinstance(other, (int, float, np.integer, np.floating)):
            return self.shift(-other)
        return self.shift(-Coordinate(other))

    def __truediv__(self, voxel_size: Any) -> Roi:
        return Roi(self._offset / voxel_size, self._shape / voxel_size)

    def __floordiv__(self, voxel_size: Any) -> Roi:
        return Roi(self._offset // voxel_size, self._shape // voxel_size)

    def __mul__(self, factor: Any) -> Roi:
        return Roi(self._offset * factor, self._shape * factor)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Roi):
            return NotImplemented
        return self._offset == other._offset and self._shape == other._shape

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        if self.empty:
            return f"[empty ROI at {self.offset}]"
        parts = []
        for b, e, s in zip(self.begin, self.end, self.shape):
            parts.append("-inf:inf (inf)" if b is None else f"{b}:{e} ({s})")
        return "[" + ", ".join(parts) + "]"

    __str__ = __repr__
