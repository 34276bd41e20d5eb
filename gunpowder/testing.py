"""Hypothesis strategies for property-testing pipelines and your own filters.

    from hypothesis import given
    from gunpowder.testing import rois_on_grid, arrays_for

`voxel_sizes()`, `coordinates()`, `rois()`, `rois_on_grid(voxel_size)`, `array_specs()`,
`arrays(spec)`, `requests(keys, within)`, `sources(key)`: all in world units, anisotropic
voxel sizes (e.g. 40x4x4) and non-zero offsets included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .batch import Array
from .geometry import Coordinate, Roi
from .nodes.array_source import ArraySource
from .spec import ArrayKey, ArraySpec, BatchRequest

DTYPES = (np.uint8, np.uint16, np.uint64, np.int32, np.float32, np.float64)


def coordinates(dims: int = 3, min_value: int = -1000, max_value: int = 1000) -> st.SearchStrategy:
    """Coordinates with `dims` integer entries."""
    return st.tuples(*[st.integers(min_value, max_value)] * dims).map(Coordinate)


def voxel_sizes(dims: int = 3, max_value: int = 40) -> st.SearchStrategy:
    """Voxel sizes, isotropic or anisotropic (40x4x4-like)."""
    return st.one_of(
        st.tuples(*[st.integers(1, max_value)] * dims).map(Coordinate),
        st.sampled_from(
            [Coordinate((40, 4, 4)), Coordinate((8, 8, 8)), Coordinate((1, 1, 1))]
        ).filter(lambda c: len(c) == dims),
    )


def rois(dims: int = 3, max_offset: int = 1000, max_shape: int = 1000) -> st.SearchStrategy:
    """Bounded ROIs with arbitrary (also negative) offsets."""
    return st.builds(
        Roi,
        coordinates(dims, -max_offset, max_offset),
        st.tuples(*[st.integers(0, max_shape)] * dims),
    )


def rois_on_grid(
    voxel_size: Any, max_voxels: int = 16, max_offset_voxels: int = 20, min_voxels: int = 1
) -> st.SearchStrategy:
    """ROIs whose offset and shape are multiples of `voxel_size`."""
    vs = Coordinate(voxel_size)
    dims = len(vs)
    return st.builds(
        lambda off, shp: Roi(Coordinate(off) * vs, Coordinate(shp) * vs),
        st.tuples(*[st.integers(-max_offset_voxels, max_offset_voxels)] * dims),
        st.tuples(*[st.integers(min_voxels, max_voxels)] * dims),
    )


@st.composite
def array_specs(draw: Any, dims: int = 3, max_voxels: int = 12) -> ArraySpec:
    """ArraySpecs with a ROI on their voxel grid, a dtype and interpolatable flag."""
    vs = draw(voxel_sizes(dims))
    roi = draw(rois_on_grid(vs, max_voxels))
    dtype = draw(st.sampled_from(DTYPES))
    return ArraySpec(
        roi=roi,
        voxel_size=vs,
        dtype=dtype,
        interpolatable=bool(np.issubdtype(dtype, np.floating)),
    )


@st.composite
def arrays(draw: Any, spec: ArraySpec | None = None, channels: int = 0) -> Array:
    """An Array filled with random data for `spec` (drawn if not given)."""
    spec = draw(array_specs()) if spec is None else spec
    shape = tuple(spec.roi.shape / spec.voxel_size)
    if channels:
        shape = (channels,) + shape
    dtype = np.dtype(spec.dtype or np.float32)
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), min(int(info.max), 2**31))
    data = draw(hnp.arrays(dtype, shape, elements=elements))
    return Array(data, spec)


@st.composite
def requests(draw: Any, keys: list[ArrayKey], within: Roi, voxel_size: Any) -> BatchRequest:
    """Requests for `keys`, each a grid-aligned ROI inside `within`."""
    vs = Coordinate(voxel_size)
    request = BatchRequest(random_seed=draw(st.integers(0, 2**32)))
    grid = within.snap_to_grid(vs, mode="shrink")
    shape_vox = grid.shape / vs
    for key in keys:
        size = Coordinate(draw(st.integers(1, max(1, s))) for s in shape_vox)
        begin = Coordinate(draw(st.integers(0, s - z)) for s, z in zip(shape_vox, size))
        request[key] = ArraySpec(roi=Roi(grid.offset + begin * vs, size * vs))
    return request


@st.composite
def sources(draw: Any, key: ArrayKey, dims: int = 3, max_voxels: int = 12) -> ArraySource:
    """An ArraySource of random data under `key`."""
    spec = draw(array_specs(dims, max_voxels))
    return ArraySource(key, draw(arrays(spec)))
