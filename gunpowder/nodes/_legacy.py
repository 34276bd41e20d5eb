"""Adapters that run users' 1.x `BatchProvider`/`BatchFilter` subclasses as functional
nodes, with 1.x request and batch semantics (duck-typed: this module imports neither base)."""

from __future__ import annotations

import inspect
import random
from typing import Any, NamedTuple

import numpy as np

from ..batch import Batch
from ..errors import BatchFilterError
from ..node import Node, Source
from ..spec import ArraySpec, BatchRequest, ProviderSpec


class FilterContext(NamedTuple):
    """What LegacyFilter.prepare hands to process."""

    downstream: Any  # the request as the filter saw it (None when skipped)
    dependencies: Any  # what prepare returned
    skip: bool


def _takes_batch_only(method: Any) -> bool:
    """True for a bound `process(self, batch)` (seed era), False for `process(batch, request)`."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1


def _name_of(obj: Any) -> str:
    name = getattr(obj, "name", None)
    name = name() if callable(name) else name
    return str(name or type(obj).__name__)


def _seed_globals(rng: np.random.Generator) -> None:
    seed = int(rng.integers(2**32))
    random.seed(seed)
    np.random.seed(seed)


def _seed_globals_like_1x(request: BatchRequest, rng: np.random.Generator) -> None:
    """Seed `random`/`np.random` with the request's seed, as a 1.x BatchFilter did (users'
    filters, e.g. with `skip_node` drawing from `random`, then make the draws they made)."""
    seed = getattr(request, "random_seed", None)
    if seed is None:
        _seed_globals(rng)
        return
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def _as_1x_request(request: BatchRequest, provided: ProviderSpec | None) -> BatchRequest:
    """The request as a 1.x filter saw it: without the dtypes the engine filled in.

    The engine fills each requested dtype from the provided spec. A 1.x filter that builds a
    dependency from a copy of a request spec (`deps[mask] = request[out].copy()`) would then
    ask its upstream for `mask` in `out`'s dtype, which 1.x, that never filled dtypes, did
    not do. A dtype equal to the provided one carries no information, so it is dropped here;
    a dependency with an explicit dtype is still checked upstream.
    """
    copy = request.copy()
    if provided is None:
        return copy
    for key, spec in copy._specs.items():
        have = provided._specs.get(key)
        dtype = getattr(spec, "dtype", None)
        if dtype is not None and isinstance(spec, ArraySpec) and have is not None:
            if have.dtype is not None and np.dtype(have.dtype) == dtype:
                copy._specs[key] = spec.replace(dtype=None)
    return copy


class LegacySource(Source):
    """Adapter: a 1.x `BatchProvider` as a functional source."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    @property
    def name(self) -> str:
        return _name_of(self.provider)

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        self.provider.spec = ProviderSpec()
        self.provider.__dict__["_upstream_views"] = []
        self.provider.setup()
        return self.provider.spec.copy()

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        _seed_globals(rng)
        batch = self.provider.provide(request.copy())
        if not isinstance(batch, Batch):
            raise BatchFilterError(
                f"{self.name}: provide() must return a Batch, got {type(batch).__name__}"
            )
        return batch

    def teardown(self) -> None:
        self.provider.teardown()


class LegacyFilter(Node):
    """Adapter: a 1.x `BatchFilter` as a functional node, with 1.x request/batch semantics."""

    def __init__(self, filt: Any) -> None:
        self.filt = filt

    @property
    def name(self) -> str:
        return _name_of(self.filt)

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        f = self.filt
        f.spec = upstream_spec.copy()
        f.__dict__["_upstream_views"] = [UpstreamView(upstream_spec)]
        f.__dict__["_provided_keys"] = set()
        f.__dict__["_updated_keys"] = set()
        f.__dict__.setdefault("_autoskip", False)
        f.setup()
        return f.spec.copy()

    def _can_skip(self, request: BatchRequest) -> bool:
        """1.x autoskip: no requested key (placeholders aside) is provided or updated here."""
        f = self.filt
        if not f.__dict__.get("_autoskip"):
            return False
        mine = f.__dict__["_provided_keys"] | f.__dict__["_updated_keys"]
        return not any(k in mine and not s.placeholder for k, s in request.items())

    def _without_provided(self, request: BatchRequest) -> BatchRequest:
        """`request` for upstream when skipping: without the keys this filter provides (a
        skipped filter's outputs can only have been asked for as placeholders)."""
        provided = [k for k in self.filt.__dict__["_provided_keys"] if k in request]
        if not provided:
            return request
        upstream = request.copy()
        for key in provided:
            del upstream[key]
        return upstream

    def _skip_node(self, request: BatchRequest) -> bool:
        skip_node = getattr(self.filt, "skip_node", None)
        if skip_node is None:
            return False
        answer = skip_node(request)
        if not isinstance(answer, (bool, np.bool_)):
            raise BatchFilterError(
                f"{self.name}: skip_node() must return True or False, got {answer!r}"
            )
        return bool(answer)

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        f = self.filt
        if self._can_skip(request):
            return self._without_provided(request), FilterContext(None, None, skip=True)
        _seed_globals_like_1x(request, rng)
        downstream = _as_1x_request(request, self.spec)
        if self._skip_node(downstream.copy()):
            return self._without_provided(request), FilterContext(None, None, skip=True)
        own = downstream.copy()
        deps = f.prepare(own)
        if isinstance(deps, ProviderSpec):
            # ask for both: where the downstream request and the dependencies name the
            # same key, upstream gets the union of their ROIs and the dependency's voxel
            # size/dtype/... (1.x `request.update_with(dependencies)`)
            upstream = own.update_with(deps)
        elif deps is None:
            upstream = own
        else:
            raise BatchFilterError(
                f"{self.name}: prepare() must return a BatchRequest of dependencies or None, "
                f"got {type(deps).__name__}"
            )
        for key in f.__dict__["_provided_keys"]:
            if key in upstream:
                del upstream[key]
        return upstream, FilterContext(downstream, deps, skip=False)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        downstream, deps, skip = ctx
        if skip:
            return batch
        if deps is not None:
            deps = deps.copy()
            deps.remove_placeholders()
            node_batch = batch.crop(_only_present(deps, batch))
        else:
            node_batch = batch
        downstream.remove_placeholders()
        if _takes_batch_only(self.filt.process):  # the 2017 README's process(self, batch)
            out = self.filt.process(node_batch)
        else:
            out = self.filt.process(node_batch, downstream)
        if out is None:
            out = node_batch
        elif not isinstance(out, Batch):
            raise BatchFilterError(
                f"{self.name}: process() must return a Batch or None, got {type(out).__name__}"
            )
        return batch.merge(out, merge_profiling_stats=False)

    def teardown(self) -> None:
        self.filt.teardown()


def _only_present(request: ProviderSpec, batch: Batch) -> ProviderSpec:
    present = request.copy()
    for key in [k for k in present if k not in batch]:
        del present[key]
    return present


class UpstreamView:
    """What `get_upstream_provider()` returns during setup: something with a `.spec`."""

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec


def adapt(x: Any, is_filter: bool) -> Node:
    """The functional node for a 1.x-style provider or filter instance (one per instance)."""
    cached = x.__dict__.get("_adapter")
    if cached is not None:
        return cached
    node: Node = LegacyFilter(x) if is_filter else LegacySource(x)
    x.__dict__["_adapter"] = node
    return node
