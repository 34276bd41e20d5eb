"""The gunpowder 1.x contrib nodes (one module per node)."""

from ...nodes.add_vector_map import AddVectorMap
from .add_blobs_from_points import AddBlobsFromPoints
from .add_boundary_distance_gradients import AddBoundaryDistanceGradients
from .add_gt_mask_exclusive_zone import AddGtMaskExclusiveZone
from .add_nonsymmetric_affinities import AddNonsymmetricAffinities
from .hdf5_points_source import Hdf5PointsSource
from .prepare_malis import PrepareMalis

__all__ = [
    "AddBlobsFromPoints",
    "AddBoundaryDistanceGradients",
    "AddGtMaskExclusiveZone",
    "AddNonsymmetricAffinities",
    "AddVectorMap",
    "Hdf5PointsSource",
    "PrepareMalis",
]
