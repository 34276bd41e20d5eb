"""Adapters that run users' 1.x `BatchProvider`/`BatchFilter` subclasses as functional
nodes, with 1.x request and batch semantics (duck-typed: this module imports neither base)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from ..batch import Batch
from ..errors import BatchFilterError
from ..node import Node, Source
from ..spec import BatchRequest, ProviderSpec


def _name_of(obj: Any) -> str:
    name = getattr(obj, "name", None)
    name = name() if callable(name) else name
    return str(name or type(obj).__name__)


def _seed_globals(rng: np.random.Generator) -> None:
    seed = int(rng.integers(2**32))
    random.seed(seed)
    np.random.seed(seed)


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
        f = self.filt
        if not f.__dict__.get("_autoskip"):
            return False
        mine = f.__dict__["_provided_keys"] | f.__dict__["_updated_keys"]
        return not any(k in mine for k in request)

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        f = self.filt
        if self._can_skip(request):
            return request, (None, None, True)
        _seed_globals(rng)
        downstream = request.copy()
        own = request.copy()
        deps = f.prepare(own)
        if isinstance(deps, ProviderSpec):
            # ask for both: where the downstream request and the dependencies name the
            # same key, upstream gets the union of their ROIs (as in 1.x)
            upstream = own.merge(deps)
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
        return upstream, (downstream, deps, False)

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
