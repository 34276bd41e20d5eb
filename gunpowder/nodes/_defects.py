"""EM section defects: `DefectAugment` (missing, low-contrast, artifact and folded sections)
and `ShiftAugment` (sections slipped or shifted in their plane), with 1.x arguments.
"""

from __future__ import annotations

import numpy as np

from ..batch import Array
from ..geometry import Coordinate, Roi

MISSING, LOW_CONTRAST, ARTIFACT, DEFORM = "missing", "low_contrast", "artifact", "deform"


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


def _apply_shifts(
    points: np.ndarray, shifts: np.ndarray, axis: int, step: int, first: int
) -> np.ndarray:
    """Where upstream points land downstream: moved by their section's shift (ShiftAugment;
    `shifts` (sections, dims) world units, section i spans [first + i, first + i + 1) * step
    along `axis`)."""
    section = np.clip(np.floor(points[:, axis] / step).astype(np.int64) - first, 0, len(shifts) - 1)
    return points + shifts[section]
