"""Fixtures several test modules share: reference definitions and spying sources."""

from __future__ import annotations

from typing import Any

import numpy as np

import gunpowder as gp


def box_sum(data: np.ndarray, dtype: Any) -> np.ndarray:
    """3x3x3 sum over the last three axes, valid part only (the definition), summed in `dtype`."""
    z, y, x = (s - 2 for s in data.shape[-3:])
    out = np.zeros(data.shape[:-3] + (z, y, x), dtype)
    for i in range(3):
        for j in range(3):
            for k in range(3):
                out += data[..., i : i + z, j : j + y, k : k + x]
    return out


class SpySource(gp.ArraySource):
    """An ArraySource that records the ROIs it was asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[gp.Roi] = []

    def provide(self, request: gp.BatchRequest, rng: np.random.Generator) -> gp.Batch:
        self.seen.append(request[self.key].roi)
        return super().provide(request, rng)
