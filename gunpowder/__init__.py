"""gunpowder: training batches from huge 3D volumes, on a functional core.

The public names, nothing else; see docs/architecture.md for where each lives.
"""

from . import contrib, ext
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
from .compat import BatchSpec
from .engine import derive_seed
from .errors import (
    BatchFilterError,
    GunpowderError,
    NodeArgumentError,
    PipelineRequestError,
    PipelineSetupError,
)
from .geometry import Coordinate, Roi
from .graph import Edge, Graph, Node
from .node import ArrayFunction, FunctionNode, MultiNode, Source, lift
from .node import Node as PipelineNode  # `gp.Node` is the graph node, as in 1.x
from .nodes import *  # noqa: F403  (every node, as 1.x exports them)
from .nodes import __all__ as _node_names
from .nodes.hdf5like_source_base import SourceReadError
from .parallel import WorkerDiedError, WorkerError
from .pipeline import Pipeline, build
from .profiling import ProfilingStats, TimingSummary, plot_profiling_stats
from .seed import SolverParameters, Train
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
from .streams import stream

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
