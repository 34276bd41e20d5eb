"""`GPArraySource`: a gunpowder `Array` served as a source (1.x `gp_array_source`)."""

from __future__ import annotations

from ..batch import Array
from ..spec import ArrayKey
from .array_source import ArraySource


class GPArraySource(ArraySource):
    """Serve a gunpowder `Array` (data with its `ArraySpec`) under `key`, as 1.x's
    `gp_array_source.ArraySource` did; `ArraySource` itself takes a funlib.persistence
    `Array` in 1.5 (and, here, a gunpowder `Array` as well).

    Requests get a copy of the requested region; a nonspatial array is served whole.

    Args:
        key: the ArrayKey to provide.
        array: the gunpowder `Array` (data channels first, spatial axes last; ROI and voxel
            size of its spec in world units).

    Example::

        raw = gp.ArrayKey("RAW")
        spec = gp.ArraySpec(roi=gp.Roi((0, 0), (40, 40)), voxel_size=(4, 4))
        pipeline = gp.GPArraySource(raw, gp.Array(np.zeros((10, 10), np.float32), spec))
    """

    def __init__(self, key: ArrayKey, array: Array) -> None:
        if not isinstance(array, Array):
            raise TypeError(
                f"GPArraySource({key}): array must be a gunpowder Array (data with an "
                f"ArraySpec), got {type(array).__name__}; for a funlib.persistence Array "
                "use ArraySource"
            )
        super().__init__(key, array)
