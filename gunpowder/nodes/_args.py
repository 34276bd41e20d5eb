"""Checks of nodes' constructor arguments: each error names the node and the argument.

`NodeArgumentError` is a `ValueError` (what Python code expects for a bad value) and an
`AssertionError` (what gunpowder 1.x raised from its `assert`s, and what 1.x users' tests
catch). Numbers, probabilities, intervals, integers and axis lists of the augmentations
are checked here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import NodeArgumentError


def bad_argument(node: str, arg: str, expected: str, got: Any) -> NodeArgumentError:
    """The error for `node`'s argument `arg`, which should be `expected` but is `got`."""
    return NodeArgumentError(f"{node}: {arg} must be {expected}, got {got!r}")


def check_interval(node: str, low_arg: str, low: Any, high_arg: str, high: Any) -> tuple:
    """(low, high) as floats with low <= high, both finite."""
    values = []
    for arg, value in ((low_arg, low), (high_arg, high)):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise bad_argument(node, arg, "a number", value) from None
        if not np.isfinite(v):
            raise bad_argument(node, arg, "a finite number", value)
        values.append(v)
    if values[0] > values[1]:
        raise NodeArgumentError(
            f"{node}: {low_arg} ({low!r}) must not be larger than {high_arg} ({high!r})"
        )
    return values[0], values[1]


def check_positive_ints(node: str, arg: str, value: Any, dims: int | None = None) -> tuple:
    """`value` (an int or a sequence of ints) as a tuple of positive ints; with `dims`, a
    single int is repeated `dims` times and a sequence must have `dims` entries."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values: Sequence[Any] = (value,) * (dims or 1)
    elif isinstance(value, Sequence) or isinstance(value, np.ndarray):
        values = list(value)
    else:
        raise bad_argument(node, arg, "a positive int or a sequence of positive ints", value)
    if not values or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values
    ):
        raise bad_argument(node, arg, "positive ints", value)
    if dims is not None and len(values) != dims:
        raise bad_argument(node, arg, f"{dims} positive ints (one per axis)", value)
    return tuple(int(v) for v in values)


def numpy_dtype(node: str, arg: str, value: Any) -> np.dtype:
    """`value` as a numpy dtype."""
    try:
        return np.dtype(value)
    except TypeError:
        raise bad_argument(node, arg, "a numpy dtype", value) from None


def _number(node: str, name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NodeArgumentError(f"{node}: {name} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise NodeArgumentError(f"{node}: {name} must be a number, got {value!r}")
    return number


def _numbers(node: str, name: str, values: Any) -> tuple[float, ...]:
    """`values` (a number or a sequence of numbers) as a tuple of floats."""
    if np.ndim(values) == 0:
        return (_number(node, name, values),)
    values = tuple(values)
    if not values:
        raise NodeArgumentError(f"{node}: {name} must not be empty")
    return tuple(_number(node, f"{name}[{i}]", v) for i, v in enumerate(values))


def probability(node: str, name: str, value: Any) -> float:
    """`value` as a float in [0, 1]."""
    p = _number(node, name, value)
    if not 0.0 <= p <= 1.0:
        raise NodeArgumentError(f"{node}: {name} must be a probability in [0, 1], got {value!r}")
    return p


def probabilities(node: str, name: str, values: Any) -> tuple[float, ...]:
    """Every entry of `values` in [0, 1]."""
    return tuple(probability(node, f"{name}[{i}]", v) for i, v in enumerate(values))


def non_negative(node: str, name: str, values: Any) -> tuple[float, ...]:
    """`values` (number or sequence) with every entry >= 0 (finite)."""
    out = _numbers(node, name, values)
    if any(v < 0 or math.isinf(v) for v in out):
        raise NodeArgumentError(f"{node}: {name} must be >= 0 (and finite), got {values!r}")
    return out


def positive(node: str, name: str, values: Any) -> tuple[float, ...]:
    """`values` (number or sequence) with every entry > 0 (finite)."""
    out = _numbers(node, name, values)
    if any(v <= 0 or math.isinf(v) for v in out):
        raise NodeArgumentError(f"{node}: {name} must be > 0 (and finite), got {values!r}")
    return out


def interval(
    node: str, name: str, values: Any, minimum: float | None = None
) -> tuple[float, float]:
    """A (start, end) pair with start <= end (and start >= `minimum` if given)."""
    if np.ndim(values) != 1 or len(values) != 2:
        raise NodeArgumentError(f"{node}: {name} must be a (start, end) pair, got {values!r}")
    lo, hi = (_number(node, name, v) for v in values)
    if math.isinf(lo) or math.isinf(hi):
        raise NodeArgumentError(f"{node}: {name} must be finite, got {values!r}")
    if lo > hi:
        raise NodeArgumentError(f"{node}: {name} must be ordered (start <= end), got {values!r}")
    if minimum is not None and lo < minimum:
        raise NodeArgumentError(f"{node}: {name} must lie in [{minimum}, ...), got {values!r}")
    return lo, hi


def integer(node: str, name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as an int (a float only if integral), >= `minimum` if given."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise NodeArgumentError(f"{node}: {name} must be an integer, got {value!r}")
    if float(value) != int(value):
        raise NodeArgumentError(f"{node}: {name} must be an integer, got {value!r}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise NodeArgumentError(f"{node}: {name} must be >= {minimum}, got {value!r}")
    return number


def axes(node: str, name: str, values: Sequence[Any] | None) -> tuple[int, ...] | None:
    """Distinct non-negative axis indices (None passes through)."""
    if values is None:
        return None
    if np.ndim(values) != 1:
        raise NodeArgumentError(
            f"{node}: {name} must be a sequence of axis indices, got {values!r}"
        )
    out = tuple(integer(node, name, v, minimum=0) for v in values)
    if len(set(out)) != len(out):
        raise NodeArgumentError(f"{node}: {name} names an axis twice: {values!r}")
    return out
