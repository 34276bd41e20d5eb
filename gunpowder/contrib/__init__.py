"""gunpowder 1.x's `gunpowder.contrib`: less common nodes (synapses, MALIS, boundary gradients).

`from gunpowder.contrib import PrepareMalis` works as in 1.x.
"""

from .nodes import (
    AddBlobsFromPoints,
    AddBoundaryDistanceGradients,
    AddGtMaskExclusiveZone,
    AddNonsymmetricAffinities,
    AddVectorMap,
    Hdf5PointsSource,
    PrepareMalis,
)

__all__ = [
    "AddBlobsFromPoints",
    "AddBoundaryDistanceGradients",
    "AddGtMaskExclusiveZone",
    "AddNonsymmetricAffinities",
    "AddVectorMap",
    "Hdf5PointsSource",
    "PrepareMalis",
]
