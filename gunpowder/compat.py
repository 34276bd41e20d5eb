"""The gunpowder 1.x face for users' own classes: `BatchProvider`, `BatchFilter`, `BatchSpec`.

A 1.x subclass keeps its methods (`setup()`, `prepare(request)`, `process(batch, request)`,
`provide(request)`); an adapter turns it into a functional node. 1.x code that draws from
the global `random`/`np.random` still gets reproducible batches: the adapter seeds those from
the node's own Generator before each call.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from .batch import Batch
from .errors import BatchFilterError, PipelineSetupError
from .geometry import Coordinate
from .pipeline import Composable, MultiNode, Node, Source
from .spec import ArrayKey, ArrayKeys, ArraySpec, BatchRequest, ProviderSpec


class _UpstreamView:
    """What `get_upstream_provider()` returns during setup: something with a `.spec`."""

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec


class BatchProvider(Composable):
    """Base of 1.x-style sources: override `setup()` (call `self.provides(key, spec)`) and
    `provide(request) -> Batch`.

    For users' own gunpowder 1.x sources: an adapter turns an instance into a functional
    source when it is put into a pipeline. `provide` returns a Batch with the requested keys
    and ROIs; `self.spec` holds what `setup` declared. The global `random` and `np.random`
    are seeded from the node's Generator before each call, so batches stay reproducible.
    The base class takes no constructor arguments; a subclass defines its own.

    Example::

        class Ones(gp.BatchProvider):
            def __init__(self, key):
                self.key = key

            def setup(self):
                self.provides(self.key, gp.ArraySpec(
                    roi=gp.Roi((0, 0, 0), (100, 100, 100)), voxel_size=(1, 1, 1),
                    dtype=np.float32, interpolatable=True))

            def provide(self, request):
                spec = self.spec[self.key].copy()
                spec.roi = request[self.key].roi
                batch = gp.Batch()
                batch[self.key] = gp.Array(np.ones(spec.roi.shape, np.float32), spec)
                return batch

        raw = gp.ArrayKey("RAW")
        pipeline = Ones(raw)
        pipeline += gp.RandomLocation()
    """

    def setup(self) -> None:
        pass

    def teardown(self) -> None:
        pass

    def provide(self, request: BatchRequest) -> Batch:
        raise NotImplementedError(f"{type(self).__name__} must implement provide(request)")

    @property
    def spec(self) -> ProviderSpec:
        if "_spec" not in self.__dict__:
            self.__dict__["_spec"] = ProviderSpec()
        return self.__dict__["_spec"]

    @spec.setter
    def spec(self, value: ProviderSpec) -> None:
        self.__dict__["_spec"] = value

    def provides(self, key: Any, spec: Any) -> None:
        """Declare that this provider offers `key` with `spec` (call in `setup`)."""
        if key in self.spec:
            raise PipelineSetupError(
                f"{type(self).__name__}: provides {key}, but it is already provided upstream; "
                "use updates() to change it"
            )
        self.spec[key] = spec
        self.__dict__.setdefault("_provided_keys", set()).add(key)

    @property
    def remove_placeholders(self) -> bool:
        return False

    def get_upstream_provider(self) -> _UpstreamView:
        ups = self.__dict__.get("_upstream_views", [])
        if len(ups) != 1:
            raise PipelineSetupError(f"{type(self).__name__} has {len(ups)} upstream providers")
        return ups[0]

    def get_upstream_providers(self) -> list[_UpstreamView]:
        return list(self.__dict__.get("_upstream_views", []))

    @property
    def name(self) -> str:
        return type(self).__name__


class BatchFilter(BatchProvider):
    """Base of 1.x-style filters: `setup()` with `provides`/`updates`, `prepare(request)`
    returning a `BatchRequest` of dependencies (or None), `process(batch, request)` returning
    a `Batch` of outputs (or None after editing `batch` in place).

    For users' own gunpowder 1.x filters, run through an adapter with 1.x semantics:
    `self.spec` starts as the upstream spec; keys declared with `provides` are removed from
    the upstream request; dependencies returned by `prepare` are requested as well (the
    union of ROIs where a key is also requested downstream); the returned outputs are merged
    into the batch. `enable_autoskip()` skips the filter for requests without its keys. The
    global `random`/`np.random` are seeded from the node's Generator before each call. The
    base class takes no constructor arguments; a subclass defines its own.

    Example::

        class Threshold(gp.BatchFilter):
            def __init__(self, key, target, value):
                self.key, self.target, self.value = key, target, value

            def setup(self):
                spec = self.spec[self.key].copy()
                spec.dtype, spec.interpolatable = np.uint8, False
                self.provides(self.target, spec)

            def prepare(self, request):
                deps = gp.BatchRequest()
                deps[self.key] = request[self.target].copy()
                return deps

            def process(self, batch, request):
                array = batch[self.key]
                spec = array.spec.copy()
                spec.dtype, spec.interpolatable = np.uint8, False
                outputs = gp.Batch()
                outputs[self.target] = gp.Array((array.data > self.value).astype(np.uint8), spec)
                return outputs

        pipeline += Threshold(raw, gp.ArrayKey("FOREGROUND"), 0.5)
    """

    def updates(self, key: Any, spec: Any) -> None:
        """Declare that this filter changes `key` (which must be provided upstream)."""
        if key not in self.spec:
            raise PipelineSetupError(
                f"{type(self).__name__}: updates {key}, but upstream does not provide it "
                f"(has {sorted(self.spec)})"
            )
        self.spec[key] = spec
        self.__dict__.setdefault("_updated_keys", set()).add(key)

    def enable_autoskip(self, skip: bool = True) -> None:
        """Skip this filter for requests that contain none of its provided/updated keys."""
        self.__dict__["_autoskip"] = skip

    def enable_placeholders(self) -> None:
        """Accepted for 1.x compatibility: placeholders are always passed on here."""
        self.__dict__["_placeholders"] = True

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        return None

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        return None


def _seed_globals(rng: np.random.Generator) -> None:
    seed = int(rng.integers(2**32))
    random.seed(seed)
    np.random.seed(seed)


class LegacySource(Source):
    """Adapter: a 1.x `BatchProvider` as a functional source."""

    def __init__(self, provider: BatchProvider) -> None:
        self.provider = provider

    @property
    def name(self) -> str:
        return self.provider.name

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

    def __init__(self, filt: BatchFilter) -> None:
        self.filt = filt

    @property
    def name(self) -> str:
        return self.filt.name

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        f = self.filt
        f.spec = upstream_spec.copy()
        f.__dict__["_upstream_views"] = [_UpstreamView(upstream_spec)]
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


def adapt(x: BatchProvider) -> Node:
    """The functional node for a 1.x-style provider or filter instance (one per instance)."""
    cached = x.__dict__.get("_adapter")
    if cached is not None:
        return cached
    if isinstance(x, BatchFilter):
        node: Node = LegacyFilter(x)
    else:
        node = LegacySource(x)
    x.__dict__["_adapter"] = node
    return node


class BatchSpec:
    """The seed-era request helper: input/output shapes in voxels for the standard keys.

    `BatchSpec((84, 268, 268), (56, 56, 56), with_gt=True).request(voxel_size)` (or
    `.to_request()`) gives a `BatchRequest` for RAW (input shape) and GT_LABELS, GT_MASK,
    GT_AFFINITIES (output shape) as asked.
    """

    def __init__(
        self,
        input_shape: Any,
        output_shape: Any,
        input_offset: Any = None,
        output_offset: Any = None,
        resolution: Any = None,
        with_volumes: Any = None,
        with_gt: bool = False,
        with_gt_mask: bool = False,
        with_gt_affinities: bool = False,
        with_prediction: bool = False,
        voxel_size: Any = None,
    ) -> None:
        self.input_shape = Coordinate(input_shape)
        self.output_shape = Coordinate(output_shape)
        self.input_offset = None if input_offset is None else Coordinate(input_offset)
        self.output_offset = None if output_offset is None else Coordinate(output_offset)
        vs = voxel_size if voxel_size is not None else resolution
        self.explicit_voxel_size = vs is not None
        self.voxel_size = (
            Coordinate(vs) if vs is not None else Coordinate((1,) * len(self.input_shape))
        )
        self.with_gt = with_gt
        self.with_gt_mask = with_gt_mask
        self.with_gt_affinities = with_gt_affinities
        self.with_prediction = with_prediction
        self.with_volumes = list(with_volumes or [])

    def output_keys(self) -> list[ArrayKey]:
        keys = []
        if self.with_gt:
            keys.append(ArrayKeys.GT_LABELS)
        if self.with_gt_mask:
            keys.append(ArrayKeys.GT_MASK)
        if self.with_gt_affinities:
            keys.append(ArrayKeys.GT_AFFINITIES)
        keys.extend(k for k in self.with_volumes if k not in keys)
        return keys

    def to_request(self, voxel_size: Any = None, random_seed: int | None = None) -> BatchRequest:
        explicit = self.explicit_voxel_size
        vs = self.voxel_size if voxel_size is None or explicit else Coordinate(voxel_size)
        request = BatchRequest(random_seed=random_seed)
        request.add(ArrayKeys.RAW, self.input_shape * vs, voxel_size=vs)
        for key in self.output_keys():
            request.add(key, self.output_shape * vs, voxel_size=vs)
        if self.input_offset is not None or self.output_offset is not None:
            from .geometry import Roi

            if self.input_offset is not None:
                request[ArrayKeys.RAW] = ArraySpec(
                    roi=Roi(self.input_offset * vs, self.input_shape * vs), voxel_size=vs
                )
            if self.output_offset is not None:
                for key in self.output_keys():
                    request[key] = ArraySpec(
                        roi=Roi(self.output_offset * vs, self.output_shape * vs), voxel_size=vs
                    )
        return request

    request = to_request

    def __repr__(self) -> str:
        return (
            f"BatchSpec(input_shape={self.input_shape}, output_shape={self.output_shape}, "
            f"keys={[ArrayKeys.RAW] + self.output_keys()})"
        )


__all__ = ["BatchProvider", "BatchFilter", "BatchSpec", "adapt", "MultiNode"]
