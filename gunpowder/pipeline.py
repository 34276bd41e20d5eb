"""The functional core: nodes, their composition into pipelines, and running requests.

A node is `setup` (spec → spec, once), `prepare` (request → upstream request + context, all
random draws from the node's own Generator) and `process` (batch → batch, using the context).
The engine checks every request against what the node provides and every batch against its
request, times each node, and seeds each node from (request seed, the node's path from the
output end), so a batch is a pure function of (pipeline, request).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .batch import Array, Batch
from .errors import GunpowderError, PipelineRequestError, PipelineSetupError
from .spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec

SEED_BITS = 63


def fresh_seed() -> int:
    """A new random seed from the OS (never from the global RNGs)."""
    return secrets.randbits(SEED_BITS)


def derive_seed(seed: int, index: int) -> int:
    """The seed of the `index`-th request of a stream started with `seed`."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(2, np.uint64)
    return int(state[0]) >> (64 - SEED_BITS)


def node_rng(seed: int, path: tuple[int, ...]) -> np.random.Generator:
    """The Generator of the node at `path` (child indices from the output end) for `seed`."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=path)))


# --------------------------------------------------------------------------------------------
# composition


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


class Node(Composable):
    """A filter: one upstream. Override `setup`, `prepare`, `process`, `teardown` as needed.

    A node that must issue several upstream requests per request (Scan, Stack, PreCache) sets
    `drives_upstream = True` and implements `serve(request, rng, fetch)` instead of
    prepare/process: `fetch(upstream_request, index=0)` runs the `index`-th upstream (seeded
    from the upstream request's own `random_seed` if set, else the current seed). The engine
    also sets `self.upstream_pipelines` (the upstream `Pipeline`s) at setup, for nodes that run
    their upstream elsewhere (worker processes).

    Exported as `gp.PipelineNode` (`gp.Node` is the graph node, as in 1.x). Draw all random
    numbers in `prepare` from its `rng` and hand them to `process` in the context; keep no
    per-request state on the node. The base class takes no constructor arguments; a subclass
    defines its own (store them as attributes).

    Example::

        class RandomFlip(gp.PipelineNode):  # flips `key` along its last axis, half the time
            def __init__(self, key):
                self.key = key

            def prepare(self, request, rng):
                return request, bool(rng.integers(2))  # the draw travels in ctx

            def process(self, batch, flip):
                if flip and self.key in batch:
                    array = batch[self.key]
                    batch[self.key] = gp.Array(np.flip(array.data, -1).copy(), array.spec)
                return batch

        pipeline += RandomFlip(raw)
    """

    arity = 1
    drives_upstream = False
    upstream_spec: Any = None
    upstream_pipelines: tuple = ()
    spec: ProviderSpec | None = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        return upstream_spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        return request, None

    def process(self, batch: Any, ctx: Any) -> Batch:
        return batch

    def teardown(self) -> None:
        pass

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Callable) -> Batch:
        """For `drives_upstream` nodes: make the batch, calling `fetch(request, index=0)`."""
        raise NotImplementedError(f"{self.name} sets drives_upstream but does not define serve")

    # helpers for subclasses -----------------------------------------------------------
    def require(self, spec: ProviderSpec, *keys: Any) -> None:
        """Raise PipelineSetupError unless every key (None skipped) is in `spec`."""
        for key in keys:
            if key is not None and key not in spec:
                raise PipelineSetupError(
                    f"{self.name}: needs {key} but upstream provides only {sorted(spec)}"
                )

    def __repr__(self) -> str:
        return self.name


class Source(Node):
    """A node without upstream: `setup(None)` says what it has, `provide` reads it.

    `setup` returns a ProviderSpec of the keys it offers (ROIs in world units);
    `provide(request, rng)` returns a Batch with each requested key at its requested ROI.
    Open files lazily (a source may be pickled into worker processes) and close them in
    `teardown`. The base class takes no constructor arguments; a subclass defines its own.

    Example::

        class Ramp(gp.Source):  # a 1D array whose value is the position
            def __init__(self, key):
                self.key = key

            def setup(self, upstream_spec=None):
                spec = gp.ArraySpec(roi=gp.Roi((0,), (100,)), voxel_size=(1,),
                                    dtype=np.float32, interpolatable=True)
                return gp.ProviderSpec({self.key: spec})

            def provide(self, request, rng):
                roi = request[self.key].roi
                data = np.arange(roi.begin[0], roi.end[0], dtype=np.float32)
                batch = gp.Batch()
                batch[self.key] = gp.Array(data, self.spec[self.key].replace(roi=roi))
                return batch

        x = gp.ArrayKey("X")
        pipeline = Ramp(x)
        pipeline += gp.RandomLocation()
    """

    arity = 0

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:  # type: ignore[override]
        raise NotImplementedError

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        raise NotImplementedError


class MultiNode(Node):
    """A node with any number of upstreams (e.g. MergeProvider, RandomProvider).

    `setup(upstream_specs)` gets one spec per upstream (in the order of the tuple it is added
    to; also in `self.upstream_spec`); `prepare` returns one request per upstream (None: not
    needed) and a context; `process(batches, ctx)` gets the batches in the same order (None
    where not requested). The base class takes no constructor arguments; a subclass defines
    its own.

    Example::

        class Average(gp.MultiNode):  # the voxel-wise mean of `key` over all upstreams
            def __init__(self, key):
                self.key = key

            def setup(self, upstream_specs):
                return upstream_specs[0].copy()

            def prepare(self, request, rng):
                return [request.copy() for _ in self.upstream_spec], None

            def process(self, batches, ctx):
                out = batches[0]
                array = out[self.key]
                mean = np.mean([b[self.key].data for b in batches], axis=0)
                out[self.key] = gp.Array(mean.astype(array.data.dtype), array.spec)
                return out

        pipeline = (source_a, source_b) + Average(raw)
    """

    arity = -1

    def setup(self, upstream_specs: list[ProviderSpec]) -> ProviderSpec:  # type: ignore[override]
        raise NotImplementedError


def as_node(x: Any) -> Node:
    """A Node for `x`: a Node as it is, a 1.x BatchProvider/BatchFilter through its adapter."""
    if isinstance(x, Node):
        return x
    from .compat import BatchProvider, adapt

    if isinstance(x, BatchProvider):
        return adapt(x)
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
        node.upstream_pipelines = self.upstream
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
        request = _as_request(self, request)
        seed = getattr(request, "random_seed", None)
        seed = fresh_seed() if seed is None else seed
        req = BatchRequest(random_seed=seed)
        req._specs = {k: v.copy() for k, v in request.items()}
        batch = run_request(self, req, seed, ())
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


# --------------------------------------------------------------------------------------------
# the engine


def run_request(p: Pipeline, request: BatchRequest, seed: int, path: tuple[int, ...]) -> Batch:
    """Serve `request` at position `p`: check, prepare, recurse upstream, process, conform."""
    node = p.node
    request = check_request(node, request)
    rng = node_rng(seed, path)
    try:
        if node.arity == 0:
            t0 = time.perf_counter()
            batch = node.provide(request, rng)
            elapsed = time.perf_counter() - t0
            _expect_batch(node, batch, "provide")
            batch.profiling_stats.add(node.name, "provide", elapsed)
        elif node.drives_upstream:

            def fetch(upstream_request: Any, index: int = 0) -> Batch:
                return _request_upstream(
                    p.upstream[index], upstream_request, seed, path + (index,), node
                )

            t0 = time.perf_counter()
            batch = node.serve(request, rng, fetch)
            elapsed = time.perf_counter() - t0
            _expect_batch(node, batch, "serve")
            batch.profiling_stats.add(node.name, "serve", elapsed)
        else:
            t0 = time.perf_counter()
            upstream_request, ctx = node.prepare(request, rng)
            t_prepare = time.perf_counter() - t0
            if node.arity == 1:
                up_batch = _request_upstream(
                    p.upstream[0], upstream_request, seed, path + (0,), node
                )
                stats = up_batch.profiling_stats
            else:
                if len(upstream_request) != len(p.upstream):
                    raise PipelineRequestError(
                        f"{node.name}: prepare returned {len(upstream_request)} requests for "
                        f"{len(p.upstream)} upstream providers"
                    )
                up_batch = [
                    None if r is None else _request_upstream(u, r, seed, path + (i,), node)
                    for i, (u, r) in enumerate(zip(p.upstream, upstream_request))
                ]
                stats = next((b.profiling_stats for b in up_batch if b is not None), None)
            t0 = time.perf_counter()
            batch = node.process(up_batch, ctx)
            t_process = time.perf_counter() - t0
            _expect_batch(node, batch, "process")
            if stats is not None and batch.profiling_stats is not stats:
                stats.merge_with(batch.profiling_stats)
                batch.profiling_stats = stats
            batch.profiling_stats.add(node.name, "prepare", t_prepare)
            batch.profiling_stats.add(node.name, "process", t_process)
    except GunpowderError as e:
        if not getattr(e, "node_name", None):
            e.node_name = node.name  # type: ignore[attr-defined]
            if e.args and isinstance(e.args[0], str) and not e.args[0].startswith(node.name):
                e.args = (f"{node.name}: {e.args[0]}",) + e.args[1:]
        raise
    except Exception as e:
        err = PipelineRequestError(
            f"{node.name} failed with {type(e).__name__}: {e}\n  while serving {_describe(request)}"
        )
        err.node_name = node.name  # type: ignore[attr-defined]
        raise err from e
    return conform_batch(node, batch, request)


def _request_upstream(
    p: Pipeline, request: Any, seed: int, path: tuple[int, ...], downstream: Node
) -> Batch:
    if not isinstance(request, ProviderSpec):
        raise PipelineRequestError(
            f"{downstream.name}: prepare must return (BatchRequest, ctx), got {type(request).__name__}"
        )
    own_seed = getattr(request, "random_seed", None)
    upstream_seed = seed if own_seed is None else own_seed
    if not isinstance(request, BatchRequest) or own_seed != upstream_seed:
        req = BatchRequest(random_seed=upstream_seed)
        req._specs = dict(request._specs)
        request = req
    return run_request(p, request, upstream_seed, path)


def _expect_batch(node: Node, batch: Any, phase: str) -> None:
    if not isinstance(batch, Batch):
        raise PipelineRequestError(
            f"{node.name}: {phase} must return a Batch, got {type(batch).__name__}"
        )


def _describe(request: ProviderSpec) -> str:
    parts = [f"{k}: {getattr(s, 'roi', None)}" for k, s in request.items()]
    return "request {" + ", ".join(parts) + "}"


def check_request(node: Node, request: BatchRequest) -> BatchRequest:
    """Raise PipelineRequestError if `request` asks for what `node` does not provide.

    Returns the request with voxel sizes (and dtypes) filled in from the provided spec.
    """
    provided = node.spec
    if provided is None:
        raise PipelineSetupError(f"{node.name}: asked for a batch before setup (use gp.build)")
    filled = None
    for key, spec in request.items():
        if key not in provided:
            raise PipelineRequestError(
                f"{node.name}: {key} was requested but is not provided here; "
                f"provided keys: {sorted(provided)}"
            )
        have = provided[key]
        roi = spec.roi
        if roi is not None and have.roi is not None and not have.roi.contains(roi):
            raise PipelineRequestError(
                f"{node.name}: {key} requested with ROI {roi}, which lies outside the provided "
                f"ROI {have.roi}"
            )
        if isinstance(key, ArrayKey):
            vs = have.voxel_size
            if spec.voxel_size is not None and vs is not None and spec.voxel_size != vs:
                raise PipelineRequestError(
                    f"{node.name}: {key} requested at voxel size {spec.voxel_size}, but it is "
                    f"provided at voxel size {vs}"
                )
            if roi is not None and vs is not None and not have.nonspatial:
                if roi.dims != vs.dims:
                    raise PipelineRequestError(
                        f"{node.name}: {key} requested with a {roi.dims}D ROI {roi}, but it is "
                        f"{vs.dims}D (voxel size {vs})"
                    )
                if not roi.unbounded and not (
                    roi.offset.is_multiple_of(vs) and roi.shape.is_multiple_of(vs)
                ):
                    raise PipelineRequestError(
                        f"{node.name}: {key} requested with ROI {roi}, which is not a multiple of "
                        f"its voxel size {vs}; snap it with roi.snap_to_grid({tuple(vs)})"
                    )
            if spec.dtype is not None and have.dtype is not None and spec.dtype != have.dtype:
                raise PipelineRequestError(
                    f"{node.name}: {key} requested with dtype {spec.dtype}, provided as {have.dtype}"
                )
            if (spec.voxel_size is None and vs is not None) or (
                spec.dtype is None and have.dtype is not None
            ):
                if filled is None:
                    filled = dict(request._specs)
                filled[key] = spec.replace(
                    voxel_size=spec.voxel_size or vs,
                    dtype=spec.dtype if spec.dtype is not None else have.dtype,
                    interpolatable=(
                        spec.interpolatable
                        if spec.interpolatable is not None
                        else have.interpolatable
                    ),
                    nonspatial=spec.nonspatial or have.nonspatial,
                )
    if filled is None:
        return request
    new = BatchRequest(random_seed=request.random_seed)
    new._specs = filled
    return new


def conform_batch(node: Node, batch: Batch, request: BatchRequest) -> Batch:
    """Check `batch` delivers `request` (keys, ROIs, voxel sizes) and crop it to the request."""
    needs_crop = len(batch) != len(request)
    for key, spec in request.items():
        if key not in batch:
            if spec.placeholder:
                needs_crop = True
                continue
            raise PipelineRequestError(
                f"{node.name}: {key} was requested (ROI {spec.roi}) but is missing from the batch "
                f"it returned (has {sorted(batch)})"
            )
        value = batch[key]
        have = value.spec
        if spec.roi is None or have.roi is None or have.roi == spec.roi:
            if spec.placeholder:
                needs_crop = True
            continue
        if not have.roi.contains(spec.roi):
            raise PipelineRequestError(
                f"{node.name}: returned {key} with ROI {have.roi}, which does not contain the "
                f"requested ROI {spec.roi}"
            )
        needs_crop = True
        if (
            isinstance(key, ArrayKey)
            and spec.voxel_size is not None
            and have.voxel_size != spec.voxel_size
        ):
            raise PipelineRequestError(
                f"{node.name}: returned {key} at voxel size {have.voxel_size}, requested "
                f"{spec.voxel_size}"
            )
    if not needs_crop:
        return batch
    cropped = batch._empty_like()
    for key, spec in request.items():
        if key not in batch:
            continue
        value = batch[key]
        if spec.roi is not None and value.spec.roi is not None and value.spec.roi != spec.roi:
            value = (
                value.crop(spec.roi, copy=False)
                if isinstance(key, ArrayKey)
                else value.crop(spec.roi, trim=True)
            )
        cropped[key] = value
    return cropped


# --------------------------------------------------------------------------------------------
# streams


def stream(
    pipeline: Any,
    request: BatchRequest,
    seed: int | None = None,
    workers: int = 0,
    num_batches: int | None = None,
    cache_size: int | None = None,
) -> Iterator[Batch]:
    """Batches for `request`, the i-th made with seed `derive_seed(seed, i)`.

    The result does not depend on `workers` (0 = in this process). If the pipeline is not built
    yet, it is built for the lifetime of the generator.
    """
    base = fresh_seed() if seed is None else int(seed)
    p = Pipeline.of(pipeline)
    if workers > 0:
        from .parallel import parallel_stream

        yield from parallel_stream(p, request, base, workers, num_batches, cache_size)
        return
    own = not p._is_setup
    if own:
        p.setup()
    try:
        i = 0
        while num_batches is None or i < num_batches:
            yield p.request_batch(
                request.with_seed(derive_seed(base, i))
                if isinstance(request, BatchRequest)
                else BatchRequest(dict(request), random_seed=derive_seed(base, i))
            )
            i += 1
    finally:
        if own:
            p.teardown()


# --------------------------------------------------------------------------------------------
# plain functions as nodes


class FunctionNode(Node):
    """A node from plain functions: `setup(spec) -> spec`, `prepare(request, rng) -> (request,
    ctx)`, `process(batch, ctx) -> batch`; any may be omitted.

    For one-off filters without writing a class (`lift(f)` builds one for `f(batch)`).

    Args:
        setup: `setup(upstream_spec) -> spec`, what the node offers. Default None: the
            upstream spec unchanged.
        prepare: `prepare(request, rng) -> (upstream_request, ctx)`; draw random numbers from
            `rng` here. Default None: the request unchanged, ctx None.
        process: `process(batch, ctx) -> batch`. Default None: the batch unchanged.
        name: the node's name in messages and profiling. Default None: the name of
            `process`, else "FunctionNode".

    Example::

        def clip(batch, ctx):
            array = batch[raw]
            batch[raw] = gp.Array(np.clip(array.data, 0, 1), array.spec, array.attrs)
            return batch

        pipeline += gp.FunctionNode(process=clip)
    """

    def __init__(
        self,
        setup: Callable | None = None,
        prepare: Callable | None = None,
        process: Callable | None = None,
        name: str | None = None,
    ) -> None:
        self._setup_fn = setup
        self._prepare_fn = prepare
        self._process_fn = process
        self._name = name or getattr(process, "__name__", None) or "FunctionNode"

    @property
    def name(self) -> str:
        return self._name

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        return upstream_spec if self._setup_fn is None else self._setup_fn(upstream_spec)

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        return (request, None) if self._prepare_fn is None else self._prepare_fn(request, rng)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        return batch if self._process_fn is None else self._process_fn(batch, ctx)


class ArrayFunction(Node):
    """Apply `fn(data) -> data` (or `fn(data, rng)` with `random=True`) to one array.

    The result replaces `key` (or goes to `target` if given, a new key with the same ROI).
    `dtype` declares the output dtype if it changes.

    `fn` gets the array's data (channels first, spatial axes last) and must return data of
    the same spatial shape. `lift(fn, key)` builds one.

    Args:
        key: the ArrayKey whose data `fn` is applied to; it must be provided upstream.
        fn: `fn(data) -> data`, or `fn(data, rng) -> data` with `random=True`.
        target: an ArrayKey to store the result under, offered with the spec of `key` (and
            `dtype`). Default None: replace `key`.
        dtype: the dtype of the result, declared in the provided spec. Default None: the
            dtype of `key` (the batch carries the dtype `fn` actually returns).
        random: pass `fn` a `numpy.random.Generator` (seeded from the request) as second
            argument. Default False.

    Example::

        raw, mask = gp.ArrayKey("RAW"), gp.ArrayKey("MASK")
        pipeline += gp.ArrayFunction(raw, np.sqrt)
        pipeline += gp.ArrayFunction(
            raw, lambda data, rng: data + rng.normal(0, 0.1, data.shape).astype(data.dtype),
            random=True)
        pipeline += gp.ArrayFunction(raw, lambda data: (data > 0.5).astype(np.uint8),
                                     target=mask, dtype=np.uint8)
    """

    def __init__(
        self,
        key: ArrayKey,
        fn: Callable,
        target: ArrayKey | None = None,
        dtype: Any = None,
        random: bool = False,
    ) -> None:
        self.key = key
        self.fn = fn
        self.target = target
        self.dtype = dtype
        self.random = random

    @property
    def name(self) -> str:
        return f"ArrayFunction({getattr(self.fn, '__name__', 'fn')} on {self.key})"

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.key)
        spec = upstream_spec.copy()
        out = spec[self.key].copy()
        if self.dtype is not None:
            out.dtype = np.dtype(self.dtype)
        spec[self.target or self.key] = out
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.dtype is not None and self.key in upstream:
            upstream[self.key] = upstream[self.key].replace(dtype=None)
        child = None
        if self.random:
            child = np.random.default_rng(rng.integers(2**63))
        if self.target is not None and self.target in upstream:
            spec = upstream.pop(self.target)
            if self.key not in upstream:
                upstream[self.key] = ArraySpec(roi=spec.roi, voxel_size=spec.voxel_size)
        return upstream, child

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.key not in batch:
            return batch
        source = batch[self.key]
        data = self.fn(source.data, ctx) if self.random else self.fn(source.data)
        spec = source.spec.replace(dtype=getattr(data, "dtype", None))
        batch[self.target or self.key] = Array(data, spec, dict(source.attrs))
        return batch


def lift(fn: Callable, key: ArrayKey | None = None, **kwargs: Any) -> Node:
    """Turn a plain function into a node: `lift(f, key)` for `f(array) -> array`, `lift(f)`
    for `f(batch) -> batch`."""
    if key is not None:
        return ArrayFunction(key, fn, **kwargs)
    return FunctionNode(process=lambda batch, _ctx: fn(batch), name=getattr(fn, "__name__", None))


__all__ = [
    "Node",
    "Source",
    "MultiNode",
    "Pipeline",
    "build",
    "stream",
    "lift",
    "FunctionNode",
    "ArrayFunction",
    "derive_seed",
    "fresh_seed",
    "node_rng",
]
