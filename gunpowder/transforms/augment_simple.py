"""Mirrors and transposes of spatial axes about a centre on the voxel grid, as a value.

`out(x) = in(y)` with `y[perm[d]] = c[perm[d]] + s[d] * (x[d] - c[d])`, `s[d] = -1` where
axis d is mirrored. With `c` on the grid of every voxel size involved, voxel-aligned ROIs map
to voxel-aligned ROIs, so arrays flip and transpose exactly (no half-voxel shifts) and points
move by the same map.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from ..geometry import Roi


@dataclass(frozen=True)
class MirrorTranspose:
    """Axis permutation `perm`, mirror flags `mirror` and centre `centre` (world units)."""

    perm: tuple[int, ...]
    mirror: tuple[bool, ...]
    centre: tuple[int, ...]

    @property
    def is_identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm))) and not any(self.mirror)

    def source_roi(self, roi: Roi) -> Roi:
        """The upstream ROI whose data, transformed, covers `roi`."""
        dims = len(self.perm)
        begin = [0] * dims
        shape = [0] * dims
        for d, a in enumerate(self.perm):
            c_out, c_in = self.centre[d], self.centre[a]
            if self.mirror[d]:
                begin[a] = c_in - (roi.end[d] - c_out)
            else:
                begin[a] = c_in + (roi.begin[d] - c_out)
            shape[a] = roi.shape[d]
        return Roi(begin, shape)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Transform `data` whose last len(perm) axes are spatial (a view, no copy)."""
        dims = len(self.perm)
        lead = data.ndim - dims
        axes = list(range(lead)) + [lead + a for a in self.perm]
        out = np.transpose(data, axes)
        flips = tuple(lead + d for d in range(dims) if self.mirror[d])
        return np.flip(out, axis=flips) if flips else out

    def to_target(self, points: np.ndarray) -> np.ndarray:
        """Where world points (N, dims) of the upstream data end up downstream."""
        points = np.asarray(points, dtype=np.float64)
        centre = np.asarray(self.centre, dtype=np.float64)
        out = np.empty_like(points)
        for d, a in enumerate(self.perm):
            sign = -1.0 if self.mirror[d] else 1.0
            out[:, d] = centre[d] + sign * (points[:, a] - centre[a])
        return out


def allowed_permutations(dims: int, axes: tuple[int, ...]) -> list[tuple[int, ...]]:
    """All permutations of range(dims) that move only `axes` (identity first)."""
    axes = tuple(sorted(axes))
    result = []
    for p in permutations(axes):
        perm = list(range(dims))
        for a, b in zip(axes, p):
            perm[a] = b
        result.append(tuple(perm))
    return result


def permutation_weights(
    perms: list[tuple[int, ...]], probs: dict | list | tuple | None
) -> np.ndarray:
    """Probabilities of `perms`: uniform (None), from a {perm: weight} dict (others 0), or
    from per-axis probabilities of being moved (a list): prod p[a] (moved) * (1 - p[a])."""
    if probs is None:
        weights = np.ones(len(perms))
    elif isinstance(probs, dict):
        given = {tuple(int(a) for a in k): float(v) for k, v in probs.items()}
        weights = np.array([given.get(p, 0.0) for p in perms])
    else:
        axis_p = [float(v) for v in probs]
        weights = np.array(
            [
                np.prod([axis_p[a] if p[a] != a else 1.0 - axis_p[a] for a in range(len(p))])
                for p in perms
            ]
        )
    total = weights.sum()
    if total <= 0:
        weights = np.zeros(len(perms))
        weights[0] = 1.0  # only the identity is left
        return weights
    return weights / total
