"""Every node, one module each, named after its class as in gunpowder 1.x
(`gunpowder.nodes.random_location.RandomLocation`, ...). Modules starting with `_` hold what
several nodes share."""

from .add_affinities import AddAffinities
from .add_boundary_distance import AddBoundaryDistance
from .add_local_shape_descriptor import AddLocalShapeDescriptor
from .add_vector_map import AddVectorMap
from .array_source import ArraySource
from .as_type import AsType
from .balance_labels import BalanceLabels
from .batch_filter import BatchFilter
from .batch_provider import BatchProvider, BatchRequestError
from .blur_augment import BlurAugment
from .crop import Crop
from .csv_points_source import CsvPointsSource
from .daisy_request_blocks import DaisyRequestBlocks
from .defect_augment import DefectAugment
from .deform_augment import DeformAugment
from .downsample import DownSample
from .elastic_augment import ElasticAugment
from .elastic_augmentation import ElasticAugmentation
from .exclude_labels import ExcludeLabels
from .gamma_augment import GammaAugment
from .gp_array_source import GPArraySource
from .gpgraph_source import GPGraphSource
from .graph_source import GraphSource
from .grow_boundary import GrowBoundary
from .hdf5_source import Hdf5Source
from .hdf5_write import Hdf5Write
from .hdf5like_source_base import DatasetSource
from .intensity_augment import IntensityAugment
from .intensity_scale_shift import IntensityScaleShift
from .iterate_locations import IterateLocations
from .merge_provider import MergeProvider
from .monai_transform import MonaiTransform
from .n5_source import N5Source
from .n5_write import N5Write
from .noise_augment import NoiseAugment
from .normalize import Normalize
from .pad import Pad
from .precache import PreCache
from .print_profiling_stats import PrintProfilingStats
from .random_location import RandomLocation
from .random_provider import RandomProvider
from .rasterize_graph import RasterizationSettings, RasterizeGraph, RasterizePoints
from .reject import Reject
from .renumber_connected_components import RenumberConnectedComponents
from .resample import Resample
from .scan import Scan, ScanCallback
from .shift_augment import ShiftAugment
from .simple_augment import SimpleAugment
from .snapshot import Snapshot
from .specified_location import SpecifiedLocation
from .squeeze import Squeeze
from .stack import Stack
from .torchio_transform import TorchioTransform
from .unsqueeze import Unsqueeze
from .upsample import UpSample
from .zarr_source import ZarrSource
from .zarr_write import ZarrWrite
from .zero_out_const_sections import ZeroOutConstSections

__all__ = [
    "AddAffinities",
    "AddBoundaryDistance",
    "AddLocalShapeDescriptor",
    "AddVectorMap",
    "ArraySource",
    "AsType",
    "BalanceLabels",
    "BatchFilter",
    "BatchProvider",
    "BatchRequestError",
    "BlurAugment",
    "Crop",
    "DaisyRequestBlocks",
    "CsvPointsSource",
    "DatasetSource",
    "DefectAugment",
    "DeformAugment",
    "DownSample",
    "ElasticAugment",
    "ElasticAugmentation",
    "ExcludeLabels",
    "GammaAugment",
    "GPArraySource",
    "GPGraphSource",
    "GraphSource",
    "GrowBoundary",
    "Hdf5Source",
    "Hdf5Write",
    "IntensityAugment",
    "IntensityScaleShift",
    "IterateLocations",
    "MergeProvider",
    "MonaiTransform",
    "N5Source",
    "N5Write",
    "NoiseAugment",
    "Normalize",
    "Pad",
    "PreCache",
    "PrintProfilingStats",
    "RandomLocation",
    "RandomProvider",
    "RasterizationSettings",
    "RasterizeGraph",
    "RasterizePoints",
    "Reject",
    "RenumberConnectedComponents",
    "Resample",
    "Scan",
    "ScanCallback",
    "ShiftAugment",
    "SimpleAugment",
    "Snapshot",
    "SpecifiedLocation",
    "Squeeze",
    "Stack",
    "TorchioTransform",
    "UpSample",
    "Unsqueeze",
    "ZarrSource",
    "ZarrWrite",
    "ZeroOutConstSections",
]
