"""The node protocol: `Node` (one upstream), `Source` (none), `MultiNode` (several), and
nodes made from plain functions (`FunctionNode`, `ArrayFunction`, `lift`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .batch import Array, Batch
from .errors import PipelineSetupError
from .pipeline import Composable
from .spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec


class Node(Composable):
    """A filter: one upstream. Override `setup`, `prepare`, `process`, `teardown` as needed.

    A node that must issue several upstream requests per request (Scan, Stack, PreCache) sets
    `drives_upstream = True` and implements `serve(request, rng, fetch)` instead of
    prepare/process: `fetch(upstream_request, index=0)` runs the `index`-th upstream (seeded
    from the upstream request's own `random_seed` if set, else the current seed). The engine
    also sets `self.upstream_pipelines` (the upstream `Pipeline`s) before `setup`, for nodes
    that run their upstream elsewhere (worker processes) or look at it to size themselves.

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


def _transform_library(obj: Any) -> str | None:
    """ "monai" or "torchio" when `obj` is one of their transforms (by its classes' modules)."""
    for cls in type(obj).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root in ("monai", "torchio"):
            return root
    return None


def lift(fn: Callable, key: ArrayKey | None = None, **kwargs: Any) -> Node:
    """Turn a plain function into a node: `lift(f, key)` for `f(array) -> array`, `lift(f)`
    for `f(batch) -> batch`; a MONAI or TorchIO transform becomes `MonaiTransform` /
    `TorchioTransform` on `key` (one key, a list or a mapping), seeded from the request."""
    library = _transform_library(fn)
    if library is not None:  # a MONAI/TorchIO transform, seeded from the request
        import importlib

        module, name = {
            "monai": ("monai_transform", "MonaiTransform"),
            "torchio": ("torchio_transform", "TorchioTransform"),
        }[library]
        node_class = getattr(importlib.import_module(f"gunpowder.nodes.{module}"), name)
        return node_class(fn, keys=key, **kwargs)
    if key is not None:
        return ArrayFunction(key, fn, **kwargs)
    return FunctionNode(process=lambda batch, _ctx: fn(batch), name=getattr(fn, "__name__", None))
