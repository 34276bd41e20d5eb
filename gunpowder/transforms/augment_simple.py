"""Mirrors and transposes of spatial axes as a value: a signed axis permutation plus offset.

`out(x) = in(y)` with `y[perm[d]] = offset[d] + sign[d] * x[d]` (world units), `sign[d] = -1`
where output axis d is mirrored. With integer offsets that keep every involved voxel grid on
itself, voxel-aligned ROIs map to voxel-aligned ROIs, so arrays flip and transpose exactly
(no half-voxel shifts) and points move by the same map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from ..geometry import Roi


@dataclass(frozen=True)
class MirrorTranspose:
    """Axis permutation `perm`, per output axis `mirror` flags and integer `offset`s."""

    perm: tuple[int, ...]
    mirror: tuple[bool, ...]
    offset: tuple[int, ...]

    @classmethod
    def about(
        cls,
        perm: Sequence[int],
        mirror: Sequence[bool],
        transpose_centre: Sequence[int],
        mirror_centre2: Sequence[int],
    ) -> MirrorTranspose:
        """Transpose about `transpose_centre`, then mirror output axis d about
        `mirror_centre2[d] / 2` (twice the centre, so half-voxel centres stay integers)."""
        t = transpose_centre
        offset = tuple(
            int(t[a] - t[d] + (mirror_centre2[d] if mirror[d] else 0)) for d, a in enumerate(perm)
        )
        return cls(tuple(int(a) for a in perm), tuple(bool(m) for m in mirror), offset)

    @property
    def is_identity(self) -> bool:
        return (
            self.perm == tuple(range(len(self.perm)))
            and not any(self.mirror)
            and not any(self.offset)
        )

    def source_roi(self, roi: Roi) -> Roi:
        """The upstream ROI whose data, transformed, covers `roi` exactly."""
        dims = len(self.perm)
        begin = [0] * dims
        shape = [0] * dims
        for d, a in enumerate(self.perm):
            if self.mirror[d]:
                begin[a] = self.offset[d] - roi.end[d]
            else:
                begin[a] = self.offset[d] + roi.begin[d]
            shape[a] = roi.shape[d]
        return Roi(begin, shape)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Transform `data` (of `source_roi(roi)`) whose last len(perm) axes are spatial into
        the data of `roi` (a view, no copy)."""
        dims = len(self.perm)
        lead = data.ndim - dims
        axes = list(range(lead)) + [lead + a for a in self.perm]
        out = np.transpose(data, axes)
        flips = tuple(lead + d for d in range(dims) if self.mirror[d])
        return np.flip(out, axis=flips) if flips else out

    def to_target(self, points: np.ndarray) -> np.ndarray:
        """Where world points (N, dims) of the upstream data end up downstream."""
        points = np.asarray(points, dtype=np.float64)
        out = np.empty_like(points)
        for d, a in enumerate(self.perm):
            sign = -1.0 if self.mirror[d] else 1.0
            out[:, d] = sign * (points[:, a] - self.offset[d])
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
