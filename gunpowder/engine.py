"""The engine: seeds, and serving one request at one position of a pipeline.

At every node: check the request against what the node provides (`check_request`), draw the
node's Generator from (request seed, the node's path from the output end), prepare, recurse
upstream, process, and crop the batch to the request (`conform_batch`). Imports no node.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .batch import Batch
from .errors import GunpowderError, PipelineRequestError, PipelineSetupError
from .spec import ArrayKey, BatchRequest, GraphKey, ProviderSpec

if TYPE_CHECKING:  # the engine imports no node: it runs whatever has the node protocol
    from .node import Node
    from .pipeline import Pipeline


SEED_BITS = 63


_FRESH_SEEDS: dict[int, None] = {}  # the latest seeds fresh_seed made, oldest first
_FRESH_KEPT = 4096


def fresh_seed() -> int:
    """A new random seed from the OS (never from the global RNGs)."""
    seed = secrets.randbits(SEED_BITS)
    _FRESH_SEEDS[seed] = None
    if len(_FRESH_SEEDS) > _FRESH_KEPT:
        _FRESH_SEEDS.pop(next(iter(_FRESH_SEEDS)), None)
    return seed


def is_fresh_seed(seed: int | None) -> bool:
    """True if `seed` is one of the latest seeds `fresh_seed` made in this process: the
    request was not seeded by its caller (PreCache then serves it from its stream)."""
    return seed is not None and int(seed) in _FRESH_SEEDS


def derive_seed(seed: int, index: int) -> int:
    """The seed of the `index`-th request of a stream started with `seed`."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(2, np.uint64)
    return int(state[0]) >> (64 - SEED_BITS)


def node_rng(seed: int, path: tuple[int, ...]) -> np.random.Generator:
    """The Generator of the node at `path` (child indices from the output end) for `seed`."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=path)))


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
            batch.profiling_stats.add(node.name, "provide", elapsed, t0)
        elif node.drives_upstream:

            def fetch(upstream_request: Any, index: int = 0) -> Batch:
                return _request_upstream(
                    p.upstream[index], upstream_request, seed, path + (index,), node
                )

            t0 = time.perf_counter()
            batch = node.serve(request, rng, fetch)
            elapsed = time.perf_counter() - t0
            _expect_batch(node, batch, "serve")
            batch.profiling_stats.add(node.name, "serve", elapsed, t0)
        else:
            t_prepare_start = time.perf_counter()
            upstream_request, ctx = node.prepare(request, rng)
            t_prepare = time.perf_counter() - t_prepare_start
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
            t_process_start = time.perf_counter()
            batch = node.process(up_batch, ctx)
            t_process = time.perf_counter() - t_process_start
            _expect_batch(node, batch, "process")
            if stats is not None and batch.profiling_stats is not stats:
                stats.merge_with(batch.profiling_stats)
                batch.profiling_stats = stats
            batch.profiling_stats.add(node.name, "prepare", t_prepare, t_prepare_start)
            batch.profiling_stats.add(node.name, "process", t_process, t_process_start)
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
        if type(spec) is not type(have):
            raise PipelineRequestError(
                f"{node.name}: {key} requested with a {type(spec).__name__}, but it is "
                f"provided with a {type(have).__name__}"
            )
        roi = spec.roi
        _check_dims(node, key, spec, have)
        if roi is not None and have.roi is not None and not have.roi.contains(roi):
            raise PipelineRequestError(
                f"{node.name}: {key} requested with ROI {roi}, which lies outside the provided "
                f"ROI {have.roi}"
            )
        if isinstance(key, GraphKey):
            if (
                spec.directed is not None
                and have.directed is not None
                and spec.directed != have.directed
            ):
                raise PipelineRequestError(
                    f"{node.name}: {key} requested as a "
                    f"{'directed' if spec.directed else 'undirected'} graph, but it is provided "
                    f"{'directed' if have.directed else 'undirected'}"
                )
        if isinstance(key, ArrayKey):
            vs = have.voxel_size
            if spec.voxel_size is not None and vs is not None and spec.voxel_size != vs:
                raise PipelineRequestError(
                    f"{node.name}: {key} requested at voxel size {spec.voxel_size}, but it is "
                    f"provided at voxel size {vs}"
                )
            if roi is not None and vs is not None and not have.nonspatial:
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


def _check_dims(node: Node, key: Any, spec: Any, have: Any) -> None:
    """A request's ROI and voxel size must have as many dimensions as what is provided."""
    dims = {
        what: value.dims
        for what, value in (
            ("ROI", have.roi),
            ("voxel size", getattr(have, "voxel_size", None)),
        )
        if value is not None
    }
    if not dims or getattr(have, "nonspatial", False):
        return
    provided_dims = next(iter(dims.values()))
    for what, value in (("ROI", spec.roi), ("voxel size", getattr(spec, "voxel_size", None))):
        if value is not None and value.dims != provided_dims:
            described = ", ".join(
                f"{w} {v}"
                for w, v in (("ROI", have.roi), ("voxel size", getattr(have, "voxel_size", None)))
                if v is not None
            )
            raise PipelineRequestError(
                f"{node.name}: {key} requested with a {value.dims}D {what} {value}, but it is "
                f"provided in {provided_dims}D ({described})"
            )


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
