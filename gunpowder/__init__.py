"""gunpowder: training batches from huge 3D volumes, on a functional core.

The public names, nothing else; see docs/architecture.md for where each lives.
"""

from .batch import Array, Batch
from .blockwise import (
    BlockPlan,
    BlockwiseInterrupted,
    BlockwiseSummary,
    done_blocks,
    make_plan,
    plan_for,
    run_blockwise,
)
from .compat import BatchFilter, BatchProvider, BatchSpec
from .errors import (
    BatchFilterError,
    GunpowderError,
    PipelineRequestError,
    PipelineSetupError,
)
from .geometry import Coordinate, Roi
from .graph import Edge, Graph, Node
from .nodes.array_source import ArraySource
from .nodes.arrays import AsType, IntensityScaleShift, Normalize, Squeeze, Unsqueeze
from .nodes.arrays_sections import ZeroOutConstSections
from .nodes.combine import MergeProvider, RandomProvider, Stack
from .nodes.defects import DefectAugment, ShiftAugment
from .nodes.elastic import DeformAugment, ElasticAugment
from .nodes.graph_sources import CsvPointsSource, GraphSource
from .nodes.intensity import BlurAugment, GammaAugment, IntensityAugment, NoiseAugment
from .nodes.iterate_locations import IterateLocations
from .nodes.labels import (
    AddAffinities,
    AddBoundaryDistance,
    BalanceLabels,
    ExcludeLabels,
    GrowBoundary,
    RenumberConnectedComponents,
)
from .nodes.location import RandomLocation, SpecifiedLocation
from .nodes.pad_crop import Crop, Pad
from .nodes.profiling_nodes import PrintProfilingStats
from .nodes.rasterize import RasterizationSettings, RasterizeGraph, RasterizePoints
from .nodes.reject import Reject
from .nodes.resample import DownSample, Resample, UpSample
from .nodes.scan import Scan, ScanCallback
from .nodes.simple_augment import SimpleAugment
from .nodes.sources import DatasetSource, Hdf5Source, ZarrSource
from .nodes.writers import Hdf5Write, ZarrWrite
from .parallel import PreCache, WorkerDiedError, WorkerError
from .pipeline import (
    ArrayFunction,
    FunctionNode,
    MultiNode,
    Pipeline,
    Source,
    build,
    derive_seed,
    lift,
    stream,
)
from .pipeline import Node as PipelineNode  # `gp.Node` is the graph node, as in 1.x
from .profiling import ProfilingStats, TimingSummary, plot_profiling_stats
from .snapshot import Snapshot
from .spec import (
    ArrayKey,
    ArrayKeys,
    ArraySpec,
    BatchRequest,
    GraphKey,
    GraphKeys,
    GraphSpec,
    ProviderSpec,
)

# 1.x names for graphs that were once called points
PointsKey = GraphKey
PointsKeys = GraphKeys
PointsSpec = GraphSpec

__version__ = "2.0.0.dev0"


def __getattr__(name: str):
    """`gp.torch` and `gp.plot` import on first use, so `import gunpowder` needs no torch."""
    if name in ("torch", "plot"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gunpowder' has no attribute {name!r}")
