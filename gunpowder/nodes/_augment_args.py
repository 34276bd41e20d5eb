"""Constructor-argument checks shared by the augmentation nodes.

Each raises NodeArgumentError (a ValueError) naming the node and the argument, so a typo in a training script fails
when the pipeline is written, not as a silent wrong augmentation hours later.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import NodeArgumentError


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


class GlobalRandom:
    """The two draws the section models need, from the global `random`/`np.random` state.

    Only for 1.x code that calls a node's helpers or `prepare(request)` directly, without the
    engine's Generator; 1.x seeded these through `random.seed` and `np.random.seed`.
    """

    def random(self) -> float:
        return random.random()

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        return np.random.normal(loc, scale, size)
