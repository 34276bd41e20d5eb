"""EM section defects: `DefectAugment` (missing, low-contrast, artifact and folded sections)
and `ShiftAugment` (sections slipped or shifted in their plane), with 1.x arguments.
"""

from __future__ import annotations

import numpy as np

from ..batch import Array
from ..geometry import Coordinate, Roi

MISSING, LOW_CONTRAST, ARTIFACT, DEFORM = "missing", "low_contrast", "artifact", "deform"


def _check_p(node: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{node}: p must be in [0, 1], got {p}")
    return p


def _padded(array: Array, roi: Roi, margin: int, axis: int) -> np.ndarray:
    """`array` cropped/padded (edge values) to `roi` grown by `margin` voxels in-plane."""
    vs = array.spec.voxel_size
    dims = roi.dims
    grow = Coordinate(0 if d == axis else margin * vs[d] for d in range(dims))
    want = roi.grow(grow, grow)
    have = array.spec.roi.intersect(want)
    data = array.crop(have, copy=False).data
    lead = data.ndim - dims
    before = (have.begin - want.begin) / vs
    after = (want.end - have.end) / vs
    pad = [(0, 0)] * lead + [(int(b), int(a)) for b, a in zip(before, after)]
    return np.pad(data, pad, mode="edge") if any(p != (0, 0) for p in pad) else data


def _fill(array: Array, roi: Roi) -> Array:
    """`array` over exactly `roi`: cropped, or zero-filled where it has no data."""
    if array.spec.roi == roi:
        return array
    if array.spec.roi.contains(roi):
        return array.crop(roi, copy=False)
    vs = array.spec.voxel_size
    lead = array.data.shape[: array.data.ndim - roi.dims]
    data = np.zeros(lead + tuple(roi.shape / vs), dtype=array.data.dtype)
    common = array.spec.roi.intersect(roi)
    if not common.empty:
        target = (Ellipsis,) + ((common - roi.offset) / vs).to_slices()
        data[target] = array.crop(common, copy=False).data
    return Array(data, array.spec.replace(roi=roi), array.attrs)


def _unshift(
    points: np.ndarray, shifts: np.ndarray, plane: list, axis: int, step: int, first: int
) -> np.ndarray:
    """Where upstream points land downstream: their section's shift taken off."""
    section = np.clip(np.floor(points[:, axis] / step).astype(np.int64) - first, 0, len(shifts) - 1)
    moved = points.copy()
    for i, d in enumerate(plane):
        moved[:, d] -= shifts[section, i]
    return moved
