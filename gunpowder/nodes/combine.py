"""Combining upstreams and requests: `MergeProvider` (keys from several upstreams),
`RandomProvider` (one upstream per request, at random) and `Stack` (several samples of one
upstream along a new first axis)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..pipeline import MultiNode, Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec


def _merge(batches: Sequence[Batch | None]) -> Batch:
    """One batch with the items of all given batches (profiling stats merged)."""
    present = [b for b in batches if b is not None]
    if not present:
        return Batch()
    merged = present[0]
    for other in present[1:]:
        merged = merged.merge(other)
    return merged


class MergeProvider(MultiNode):
    """Offer the keys of several upstreams as one: `(raw_source, labels_source) +
    MergeProvider()`. Each key is requested from the upstream that provides it; a key
    provided by two upstreams is an error at setup.

    Use it to join arrays and graphs that live in different files or stores. It takes no
    constructor arguments: the upstreams are given by composition, as a tuple before it.

    Example::

        raw, points = gp.ArrayKey("RAW"), gp.GraphKey("POINTS")
        pipeline = (
            gp.ZarrSource("sample.zarr", {raw: "raw"}),
            gp.CsvPointsSource("points.csv", points),
        ) + gp.MergeProvider()
        pipeline += gp.RandomLocation(ensure_nonempty=points)
    """

    def setup(self, upstream_specs: list[ProviderSpec]) -> ProviderSpec:  # type: ignore[override]
        owner: dict[Any, int] = {}
        spec = ProviderSpec()
        for index, upstream in enumerate(upstream_specs):
            for key, value in upstream.items():
                if key in owner:
                    raise PipelineSetupError(
                        f"{self.name}: {key} is provided by upstream {owner[key]} and by "
                        f"upstream {index}; each key may come from one upstream only"
                    )
                owner[key] = index
                spec[key] = value
        self.owner = owner
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        requests: list[BatchRequest | None] = [None] * len(self.upstream_spec)
        for key, spec in request.items():
            index = self.owner[key]
            if requests[index] is None:
                requests[index] = BatchRequest()
            requests[index][key] = spec
        return requests, None

    def process(self, batches: Any, ctx: Any) -> Batch:
        return _merge(batches)


class RandomProvider(MultiNode):
    """Serve each request from one upstream chosen at random (with `probabilities`, default
    uniform). Offers the keys every upstream provides, each with the intersection of their
    ROIs. With `random_provider_key`, the chosen index is stored as a nonspatial int64 array.

    The choice is drawn from the request's Generator, so it depends on the request seed only.
    Typical use: sample training batches from several volumes.

    Args:
        probabilities: one non-negative weight per upstream (normalised to sum to 1).
            Default None: every upstream equally likely.
        random_provider_key: an ArrayKey under which the index (in upstream order) of the
            chosen upstream is stored, as a nonspatial int64 array, when requested. Default
            None.

    Example::

        raw = gp.ArrayKey("RAW")
        samples = ["a.zarr", "b.zarr", "c.zarr"]
        pipeline = tuple(
            gp.ZarrSource(s, {raw: "raw"}) + gp.RandomLocation() for s in samples
        )
        pipeline += gp.RandomProvider(probabilities=[0.5, 0.25, 0.25])
    """

    def __init__(
        self,
        probabilities: Sequence[float] | None = None,
        random_provider_key: ArrayKey | None = None,
    ) -> None:
        self.probabilities = probabilities
        self.random_provider_key = random_provider_key

    def setup(self, upstream_specs: list[ProviderSpec]) -> ProviderSpec:  # type: ignore[override]
        n = len(upstream_specs)
        if self.probabilities is None:
            p = np.full(n, 1.0 / n)
        else:
            p = np.asarray(self.probabilities, dtype=np.float64)
            if p.shape != (n,) or np.any(p < 0) or p.sum() <= 0:
                raise PipelineSetupError(
                    f"{self.name}: probabilities {list(self.probabilities)} must be {n} "
                    f"non-negative numbers (one per upstream), not all zero"
                )
            p = p / p.sum()
        self.p = p
        spec = upstream_specs[0].copy()
        for index, upstream in enumerate(upstream_specs[1:], start=1):
            for key in list(spec):
                if key not in upstream:
                    del spec[key]
                    continue
                spec[key] = _common(self.name, key, spec[key], upstream[key], index)
        if self.random_provider_key is not None:
            if self.random_provider_key in spec:
                raise PipelineSetupError(
                    f"{self.name}: random_provider_key {self.random_provider_key} is already "
                    "provided upstream; choose a new key"
                )
            spec[self.random_provider_key] = ArraySpec(nonspatial=True, dtype=np.int64)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        index = int(rng.choice(len(self.p), p=self.p))
        upstream = request.copy()
        if self.random_provider_key is not None and self.random_provider_key in upstream:
            del upstream[self.random_provider_key]
        requests: list[BatchRequest | None] = [None] * len(self.p)
        requests[index] = upstream
        return requests, index

    def process(self, batches: Any, index: Any) -> Batch:
        batch = batches[index]
        if self.random_provider_key is not None:
            batch[self.random_provider_key] = Array(
                np.array(index, dtype=np.int64), ArraySpec(nonspatial=True, dtype=np.int64)
            )
        return batch


def _common(name: str, key: Any, a: Any, b: Any, index: int) -> Any:
    """The spec of `key` that both upstreams can serve (ROI intersection); error on mismatch."""
    for field in ("voxel_size", "dtype", "nonspatial"):
        x, y = getattr(a, field, None), getattr(b, field, None)
        if x is not None and y is not None and x != y:
            raise PipelineSetupError(
                f"{name}: {key} has {field} {x} in upstream 0 but {y} in upstream {index}"
            )
    if a.roi is None or b.roi is None:
        return a if b.roi is None else b
    roi = a.roi.intersect(b.roi)
    if roi.empty:
        raise PipelineSetupError(
            f"{name}: the ROIs of {key} do not overlap across upstreams ({a.roi} and "
            f"{b.roi} in upstream {index})"
        )
    return a.replace(roi=roi)


class Stack(Node):
    """Request the same upstream `num_repetitions` times and stack every array along a new
    first axis (a batch axis). Each repetition is requested with its own seed, drawn from
    this node's Generator: different samples, and the same ones for the same request seed.

    Only arrays can be stacked (a requested graph is an error); every repetition must return
    the same shape. The spec of each array is that of the first repetition (the ROI of one
    sample, not counting the new axis).

    Args:
        num_repetitions: how many samples to request and stack (at least 1): the size of the
            new first axis.

    Example::

        raw = gp.ArrayKey("RAW")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"})
        pipeline += gp.RandomLocation()
        pipeline += gp.Stack(8)  # raw comes back as (8, z, y, x)
    """

    drives_upstream = True

    def __init__(self, num_repetitions: int) -> None:
        if int(num_repetitions) < 1:
            raise ValueError(f"Stack: num_repetitions must be at least 1, got {num_repetitions}")
        self.num_repetitions = int(num_repetitions)

    def serve(
        self, request: BatchRequest, rng: np.random.Generator, fetch: Callable[..., Batch]
    ) -> Batch:
        graphs = [k for k in request if not isinstance(k, ArrayKey)]
        if graphs:
            raise PipelineRequestError(f"{self.name}: can stack only arrays, not {graphs}")
        seeds = rng.integers(2**63, size=self.num_repetitions)
        batches = [fetch(request.with_seed(int(s))) for s in seeds]
        out = batches[0]._empty_like()
        out.profiling_stats = batches[0].profiling_stats
        for other in batches[1:]:
            out.profiling_stats.merge_with(other.profiling_stats)
        for key in request:
            arrays = [b[key] for b in batches]
            shapes = {np.shape(a.data) for a in arrays}
            if len(shapes) != 1:
                raise PipelineRequestError(
                    f"{self.name}: {key} came back with different shapes {sorted(shapes)}"
                )
            out[key] = Array(np.stack([a.data for a in arrays]), arrays[0].spec, arrays[0].attrs)
        return out
