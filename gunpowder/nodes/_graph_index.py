"""`PointIndex`: a KD-tree over node locations, built once, for box queries and sampling.

Graph sources build one at setup and hand it out through `point_index(key)`, so nodes such as
`RandomLocation(ensure_nonempty=...)` find points near a location without reading all points
for every request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..geometry import Roi
from ..graph import _bounds, inside_mask


class PointIndex:
    """Node `locations` (N, dims) float64 and `ids` (N,), with a KD-tree over the locations."""

    def __init__(self, locations: Any, ids: Any = None) -> None:
        self.locations = np.ascontiguousarray(np.asarray(locations, dtype=np.float64))
        if self.locations.ndim != 2:
            raise ValueError(f"PointIndex needs (N, dims) locations, got {self.locations.shape}")
        n = len(self.locations)
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        self.tree = cKDTree(self.locations) if n else None
        self._weights: dict[float, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.locations)

    @property
    def dims(self) -> int:
        return self.locations.shape[1]

    def query_box(self, roi: Roi) -> np.ndarray:
        """Sorted indices of the points inside `roi` (half-open, unbounded axes allowed)."""
        if self.tree is None:
            return np.zeros(0, dtype=np.int64)
        begin, end = _bounds(roi)
        if np.all(np.isfinite(begin)) and np.all(np.isfinite(end)):
            center = (begin + end) / 2
            radius = float(np.max(end - begin)) / 2
            candidates = np.asarray(
                self.tree.query_ball_point(center, radius, p=np.inf), dtype=np.int64
            )
            if len(candidates) == 0:
                return candidates
            keep = inside_mask(self.locations[candidates], roi)
            return np.sort(candidates[keep])
        return np.flatnonzero(inside_mask(self.locations, roi))

    def count(self, roi: Roi) -> int:
        return len(self.query_box(roi))

    def balance_weights(self, radius: float) -> np.ndarray:
        """Per point 1 / (points within `radius`, itself included): picks sparse points as
        often as dense clusters (1.x `point_balance_radius`)."""
        key = float(radius)
        if key not in self._weights:
            if self.tree is None or key <= 0:
                self._weights[key] = np.ones(len(self))
            else:
                counts = self.tree.query_ball_point(self.locations, key, return_length=True)
                self._weights[key] = 1.0 / np.maximum(np.asarray(counts, np.float64), 1.0)
        return self._weights[key]


__all__ = ["PointIndex"]
