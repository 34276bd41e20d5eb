"""EM section defects as pure numpy functions: low contrast, folds, artifact blending, and
sections slipped or shifted in their plane.

A "section" is one index along a spatial axis; spatial axes are the last axes of an array.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage


def low_contrast(section: np.ndarray, scale: float) -> np.ndarray:
    """`mean + (section - mean) * scale` (the section's own mean)."""
    mean = section.mean(dtype=np.float64)
    return (mean + (section - mean) * scale).astype(section.dtype, copy=False)


def blend(section: np.ndarray, artifact: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`section * (1 - alpha) + artifact * alpha` (alpha in [0, 1])."""
    alpha = alpha.astype(np.float32, copy=False)
    out = section * (1.0 - alpha) + artifact * alpha
    return out.astype(section.dtype, copy=False)


def fold(
    section: np.ndarray, point: Sequence[float], angle: float, strength: float, margin: int
) -> np.ndarray:
    """A fold through a 2D `section` (lead..., Y, X): both sides move towards the line through
    `point` (voxels, in the central crop) at `angle` by `strength` voxels, so a strip of
    width 2 * strength disappears under the fold; the line itself reads 0.

    `section` has `margin` voxels of context on each side (in y and x); the result is the
    central crop without them.
    """
    Y, X = section.shape[-2:]
    ny, nx = Y - 2 * margin, X - 2 * margin
    normal = np.array([-np.sin(angle), np.cos(angle)])
    yy, xx = np.meshgrid(
        np.arange(ny, dtype=np.float64), np.arange(nx, dtype=np.float64), indexing="ij"
    )
    dist = (yy - point[0]) * normal[0] + (xx - point[1]) * normal[1]
    side = np.where(dist >= 0, 1.0, -1.0)
    coords = np.stack(
        [yy + margin + side * strength * normal[0], xx + margin + side * strength * normal[1]]
    )
    lead = section.shape[:-2]
    flat = section.reshape((-1, Y, X))
    out = np.empty((flat.shape[0], ny, nx), dtype=section.dtype)
    for i, plane in enumerate(flat):
        warped = ndimage.map_coordinates(plane.astype(np.float32), coords, order=1, mode="nearest")
        warped[np.abs(dist) < 1.0] = 0
        out[i] = warped.astype(section.dtype, copy=False)
    return out.reshape(lead + (ny, nx))


def draw_section_shifts(
    rng: Any,
    sections: int,
    prob_slip: float,
    prob_shift: float,
    sigma: Sequence[float],
    step: Sequence[int],
) -> np.ndarray:
    """(sections, len(step)) integer offsets, multiples of `step` per axis (1.x ShiftAugment).

    Per section, one uniform draw decides: below `prob_slip` the section alone moves (a
    slip), below `prob_slip + prob_shift` it and all after it (a shift), by
    `round(N(0, sigma) / step) * step` per axis (`sigma` per axis; 0 for the section axis).
    `rng` needs `random()` and `normal(loc, scale)` (a numpy Generator).
    """
    step = np.asarray(step, dtype=np.int64)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), step.shape)
    shifts = np.zeros((sections, len(step)), dtype=np.int64)
    for s in range(sections):
        r = rng.random()
        if r < prob_slip + prob_shift:
            offset = np.rint(np.asarray(rng.normal(0.0, sigma)) / step).astype(np.int64) * step
            if r < prob_slip:
                shifts[s] += offset
            else:
                shifts[s:] += offset
    return shifts


def shift_sections(
    data: np.ndarray, offsets: np.ndarray, axis: int, spatial_dims: int, shape: Sequence[int]
) -> np.ndarray:
    """Per section along spatial `axis`, the window of `shape` (in-plane, voxels) starting at
    that section's `offsets` row (voxels, in-plane axes in order) of `data`."""
    lead = data.ndim - spatial_dims
    ax = lead + axis
    plane_axes = [lead + d for d in range(spatial_dims) if d != axis]
    out_shape = list(data.shape)
    for a, n in zip(plane_axes, shape):
        out_shape[a] = int(n)
    out = np.empty(out_shape, dtype=data.dtype)
    for s in range(data.shape[ax]):
        src: list[Any] = [slice(None)] * data.ndim
        dst: list[Any] = [slice(None)] * data.ndim
        src[ax] = dst[ax] = s
        for a, o, n in zip(plane_axes, offsets[s], shape):
            src[a] = slice(int(o), int(o) + int(n))
        out[tuple(dst)] = data[tuple(src)]
    return out
