"""gunpowder: training batches from huge 3D volumes, on a functional core.

The public names, nothing else; see docs/architecture.md for where each lives.
"""

from .batch import Array, Batch
from .compat import BatchFilter, BatchProvider, BatchSpec
from .errors import (
    BatchFilterError,
    GunpowderError,
    NodeError,
    PipelineRequestError,
    PipelineSetupError,
)
from .geometry import Coordinate, Roi
from .nodes.array_source import ArraySource
from .nodes.labels import (
    AddAffinities,
    AddBoundaryDistance,
    BalanceLabels,
    ExcludeLabels,
    GrowBoundary,
    RenumberConnectedComponents,
)
from .nodes.resample import DownSample, Resample, UpSample
from .nodes.sources import DatasetSource, Hdf5Source, ZarrSource
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
from .profiling import ProfilingStats
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

__version__ = "2.0.0.dev0"
