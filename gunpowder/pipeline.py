"""Composition: a `Pipeline` is a tree of nodes built with `+`, `toolz.pipe` or tuples;
`build` sets it up for a `with` block (open files, start workers) and tears it down after.

A batch is a pure function of (pipeline, request): see `engine` for how a request is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .allocator import configure_allocator
from .batch import Batch
from .engine import fresh_seed, run_request
from .errors import GunpowderError, PipelineRequestError, PipelineSetupError
from .spec import BatchRequest, ProviderSpec

if TYPE_CHECKING:
    from .node import Node


class Composable:
    """Anything that can be chained with `+`, `toolz.pipe` or a tuple of upstreams."""

    def __add__(self, other: Any) -> Pipeline:
        return Pipeline.of(self) + other

    def __radd__(self, other: Any) -> Pipeline:
        if isinstance(other, (tuple, list)):
            return Pipeline(as_node(self), tuple(Pipeline.of(o) for o in other))
        return Pipeline.of(other) + self

    def __call__(self, upstream: Any) -> Pipeline:
        """`node(upstream)`: lets `toolz.pipe(source, node1, node2)` build a pipeline."""
        if isinstance(upstream, (tuple, list)):
            return tuple(upstream) + self  # type: ignore[return-value]
        return Pipeline.of(upstream) + self

    # 1.x convenience: a bare node that was built can be asked directly
    def request_batch(self, request: BatchRequest) -> Batch:
        pipeline = getattr(self, "_built_pipeline", None)
        if pipeline is None:
            raise PipelineSetupError(
                f"{type(self).__name__}: request_batch called outside `with gp.build(...)`"
            )
        return pipeline.request_batch(request)


def as_node(x: Any) -> Node:
    """A node for `x`: a node as it is, a 1.x BatchProvider/BatchFilter through its adapter.

    Anything with `_to_node()` (the 1.x bases) is converted; anything else composable with an
    `arity` (the node protocol) is used as it is.
    """
    to_node = getattr(x, "_to_node", None)
    if to_node is not None:
        return to_node()
    if isinstance(x, Composable) and hasattr(x, "arity") and not isinstance(x, Pipeline):
        return x  # type: ignore[return-value]
    raise TypeError(f"can not use {x!r} ({type(x).__name__}) as a pipeline node")


class Pipeline(Composable):
    """A tree of nodes: `node` with its `upstream` pipelines. Build it with `build`."""

    def __init__(self, node: Any, upstream: tuple[Pipeline, ...] = ()) -> None:
        self.node = as_node(node)
        self.original = node
        self.upstream = tuple(upstream)
        arity = self.node.arity
        if arity == 0 and self.upstream:
            raise PipelineSetupError(f"{self.node.name} is a source and can not take an upstream")
        if arity == 1 and len(self.upstream) > 1:
            raise PipelineSetupError(
                f"{self.node.name} takes one upstream, got {len(self.upstream)}: "
                "combine several with MergeProvider or RandomProvider first"
            )
        self._is_setup = False

    @classmethod
    def of(cls, x: Any) -> Pipeline:
        if isinstance(x, Pipeline):
            return x
        if isinstance(x, (tuple, list)):
            raise PipelineSetupError(
                "a tuple of pipelines must feed a node that takes several upstreams, "
                "e.g. (a, b) + MergeProvider()"
            )
        return cls(x)

    # composition ------------------------------------------------------------------------
    def __add__(self, other: Any) -> Pipeline:
        if isinstance(other, Pipeline):
            return other._graft(self)
        if isinstance(other, (tuple, list)):
            raise PipelineSetupError("can not add a tuple after a pipeline")
        node = as_node(other)
        if node.arity == 0:
            raise PipelineSetupError(f"{node.name} is a source and can not follow another node")
        return Pipeline(other, (self,))

    def __radd__(self, other: Any) -> Pipeline:
        if isinstance(other, (tuple, list)):
            return self._graft(tuple(Pipeline.of(o) for o in other))
        return Pipeline.of(other) + self

    def _open_leaves(self) -> list[Pipeline]:
        if not self.upstream:
            return [] if self.node.arity == 0 else [self]
        return [leaf for u in self.upstream for leaf in u._open_leaves()]

    def _graft(self, upstream: Any) -> Pipeline:
        """This pipeline with `upstream` attached to its one open (source-less) end."""
        leaves = self._open_leaves()
        if len(leaves) != 1:
            raise PipelineSetupError(
                f"can not attach an upstream to a pipeline with {len(leaves)} open ends"
            )
        ups = upstream if isinstance(upstream, tuple) else (upstream,)
        return self._replace_leaf(leaves[0], ups)

    def _replace_leaf(self, leaf: Pipeline, ups: tuple[Pipeline, ...]) -> Pipeline:
        if self is leaf:
            return Pipeline(self.original, ups)
        return Pipeline(self.original, tuple(u._replace_leaf(leaf, ups) for u in self.upstream))

    def nodes(self) -> Iterator[tuple[tuple[int, ...], Pipeline]]:
        """Every position (path from the output end, pipeline) in the tree, output first."""
        stack: list[tuple[tuple[int, ...], Pipeline]] = [((), self)]
        while stack:
            path, p = stack.pop()
            yield path, p
            for i, u in reversed(list(enumerate(p.upstream))):
                stack.append((path + (i,), u))

    # life cycle --------------------------------------------------------------------------
    @property
    def spec(self) -> ProviderSpec | None:
        return self.node.spec

    def setup(self) -> None:
        if self._is_setup:
            return
        configure_allocator()  # batch-sized buffers are reused, not re-faulted (allocator.py)
        seen: dict[int, str] = {}
        for _, p in self.nodes():
            if id(p.node) in seen:
                raise PipelineSetupError(
                    f"{p.node.name}: the same node instance appears twice in the pipeline; "
                    "create one instance per position"
                )
            seen[id(p.node)] = p.node.name
        done: list[Pipeline] = []
        try:
            self._setup_tree(done)
        except BaseException:
            for p in reversed(done):
                _safe_teardown(p.node)
            raise
        self._done = done
        self._is_setup = True
        for p in done:
            if p.original is not p.node:
                p.original._built_pipeline = p
            p.node._built_pipeline = p

    def _setup_tree(self, done: list[Pipeline]) -> None:
        for u in self.upstream:
            u._setup_tree(done)
        node = self.node
        if node.arity == 0:
            upstream_spec: Any = None
        elif node.arity == 1:
            if not self.upstream:
                raise PipelineSetupError(f"{node.name} has no upstream provider")
            upstream_spec = self.upstream[0].node.spec.copy()
        else:
            if not self.upstream:
                raise PipelineSetupError(f"{node.name} needs at least one upstream provider")
            upstream_spec = [u.node.spec.copy() for u in self.upstream]
        # before setup: a node may look upstream there (Train sizes torch's threads by the
        # workers of a PreCache above it)
        node.upstream_pipelines = self.upstream
        try:
            spec = node.setup(upstream_spec)
        except GunpowderError as e:
            if not getattr(e, "node_name", None):
                e.node_name = node.name  # type: ignore[attr-defined]
            raise
        except Exception as e:
            err = PipelineSetupError(f"{node.name}: setup failed: {type(e).__name__}: {e}")
            err.node_name = node.name  # type: ignore[attr-defined]
            raise err from e
        if not isinstance(spec, ProviderSpec):
            raise PipelineSetupError(
                f"{node.name}: setup must return a ProviderSpec, got {type(spec).__name__}"
            )
        node.upstream_spec = upstream_spec
        node.spec = spec
        done.append(self)

    def teardown(self) -> None:
        if not self._is_setup:
            return
        errors = []
        for p in reversed(self._done):
            err = _safe_teardown(p.node)
            if err is not None:
                errors.append(err)
            p.node._built_pipeline = None
            if p.original is not p.node:
                p.original._built_pipeline = None
        self._is_setup = False
        if errors:
            raise errors[0]

    # running ------------------------------------------------------------------------------
    def request_batch(self, request: BatchRequest) -> Batch:
        """The batch for `request`; an unseeded request gets a fresh seed."""
        if not self._is_setup:
            raise PipelineSetupError(
                "request_batch called on a pipeline that is not built: use "
                "`with gp.build(pipeline): pipeline.request_batch(request)`"
            )
        serve = getattr(request, "serve_from", None)
        if serve is not None and not isinstance(request, ProviderSpec):
            return serve(self)  # a seed-era BatchSpec: it may add targets (affinities) itself
        request = _as_request(self, request)
        given = getattr(request, "random_seed", None)
        seed = fresh_seed() if given is None else given
        req = BatchRequest(random_seed=seed)
        req._specs = {k: v.copy() for k, v in request.items()}
        batch = run_request(self, req, seed, ())
        if given is not None or getattr(batch, "random_seed", None) is None:
            # an unseeded request served from a stream (PreCache) keeps the stream's seed,
            # so the batch can always be made again from its `random_seed`
            batch.random_seed = seed
        return batch

    def __repr__(self) -> str:
        chain = []
        p: Pipeline | None = self
        while p is not None:
            chain.append(p.node.name)
            p = p.upstream[0] if len(p.upstream) == 1 else None
        return "Pipeline(" + " <- ".join(chain) + ")"


def _as_request(p: Pipeline, request: Any) -> ProviderSpec:
    """Accept a BatchRequest, or a seed-era BatchSpec (voxel size taken from RAW upstream)."""
    if isinstance(request, ProviderSpec):
        return request
    to_request = getattr(request, "to_request", None)
    if to_request is not None:
        from .spec import ArrayKeys

        spec = p.node.spec
        raw = ArrayKeys.RAW
        voxel_size = spec[raw].voxel_size if spec is not None and raw in spec else None
        return to_request(voxel_size=voxel_size)
    raise TypeError(f"request_batch needs a BatchRequest, got {type(request).__name__}")


def _safe_teardown(node: Node) -> BaseException | None:
    try:
        node.teardown()
    except Exception as e:  # keep tearing down the others
        return e
    return None


@contextmanager
def build(pipeline: Any) -> Iterator[Pipeline]:
    """Set up a pipeline (open files, start workers) for the `with` block; tear it down after."""
    p = Pipeline.of(pipeline)
    p.setup()
    try:
        yield p
    finally:
        p.teardown()


# 1.x's `gunpowder.pipeline` also names the errors; the node protocol and `stream` are
# importable from here too (resolved lazily: node.py imports this module).
_LAZY = {
    "Node": "node",
    "Source": "node",
    "MultiNode": "node",
    "FunctionNode": "node",
    "ArrayFunction": "node",
    "lift": "node",
    "stream": "streams",
    "check_request": "engine",
    "conform_batch": "engine",
    "derive_seed": "engine",
    "fresh_seed": "engine",
    "node_rng": "engine",
    "run_request": "engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gunpowder.pipeline' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"gunpowder.{module}"), name)


__all__ = [
    "Composable",
    "Pipeline",
    "PipelineRequestError",
    "PipelineSetupError",
    "as_node",
    "build",
    *_LAZY,
]
