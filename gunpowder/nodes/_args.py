"""Checks of nodes' constructor arguments: each error names the node and the argument.

`NodeArgumentError` is a `ValueError` (what Python code expects for a bad value) and an
`AssertionError` (what gunpowder 1.x raised from its `assert`s, and what 1.x users' tests
catch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import NodeArgumentError


def bad_argument(node: str, arg: str, expected: str, got: Any) -> NodeArgumentError:
    """The error for `node`'s argument `arg`, which should be `expected` but is `got`."""
    return NodeArgumentError(f"{node}: {arg} must be {expected}, got {got!r}")


def check_probability(node: str, arg: str, value: Any) -> float:
    """`value` as a float in [0, 1]."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise bad_argument(node, arg, "a probability in [0, 1]", value) from None
    if not 0.0 <= p <= 1.0:
        raise bad_argument(node, arg, "a probability in [0, 1]", value)
    return p


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
