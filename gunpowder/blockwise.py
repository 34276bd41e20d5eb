"""Run a pipeline over a whole volume block by block on Dask: resumable, bounded in memory.

The output ROI is cut into a grid of blocks the size of the reference request's output (the
network's output). Each block writes exactly its grid cell, and a cell is made of whole chunks
of the output datasets, so no two blocks write the same chunk. A block at the end of an axis
that sticks out is computed shifted back (its inputs stay inside the volume) and writes only
its cell. After its write, a block sets its entry in a done-marker array in the same zarr
container; a rerun skips blocks already done. A block's random seed comes from its position,
so the output does not depend on the number of workers, the order of blocks or restarts.

    summary = run_blockwise(pipeline, reference, {PRED: "pred"}, "out.zarr", workers=4)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .engine import derive_seed
from .geometry import Coordinate, Roi
from .nodes.hdf5like_write_base import BLOCKWISE_DONE_GROUP, open_or_create_zarr
from .nodes.scan import shifted
from .pipeline import Composable, Pipeline, build
from .spec import ArrayKey, BatchRequest, ProviderSpec

DONE_GROUP = BLOCKWISE_DONE_GROUP

# --------------------------------------------------------------------------------------------
# the plan: which blocks exist, where each reads and writes


@dataclass(frozen=True)
class Block:
    """One block: its grid `index`, the cell it writes and the shift of the reference."""

    flat: int
    index: tuple[int, ...]
    write_roi: Roi
    shift: Coordinate


@dataclass(frozen=True)
class BlockPlan:
    """The grid of blocks covering `total_roi` (output, world units) for `reference`."""

    reference: BatchRequest
    outputs: dict[ArrayKey, str]
    container: str
    total_roi: Roi
    output_roi: Roi
    voxel_size: Coordinate
    chunk_shape: Coordinate
    seed: int = 0
    dtypes: dict[ArrayKey, Any] = field(default_factory=dict)

    @property
    def block_shape(self) -> Coordinate:
        return self.output_roi.shape

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(self.total_roi.shape.ceil_division(self.block_shape))

    @property
    def num_blocks(self) -> int:
        return int(np.prod(self.grid, dtype=np.int64))

    @property
    def done_path(self) -> str:
        return f"{DONE_GROUP}/{next(iter(self.outputs.values())).strip('/')}"

    def block(self, flat: int) -> Block:
        index = tuple(int(i) for i in np.unravel_index(flat, self.grid))
        total, shape = self.total_roi, self.block_shape
        cell_begin = total.begin + Coordinate(index) * shape
        write_roi = Roi(cell_begin, shape).intersect(total)
        tile_begin = Coordinate(min(c, e - s) for c, e, s in zip(cell_begin, total.end, shape))
        return Block(flat, index, write_roi, tile_begin - self.output_roi.begin)

    def blocks(self) -> Iterator[Block]:
        return (self.block(i) for i in range(self.num_blocks))

    def request(self, block: Block) -> BatchRequest:
        """The request that computes `block` (seeded from the plan's seed and its position)."""
        return shifted(self.reference, block.shift, derive_seed(self.seed, block.flat))

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a rerun to resume this plan (JSON-friendly)."""

        def roi(r: Roi) -> list[list[int]]:
            return [list(r.offset), list(r.shape)]

        return {
            "version": 1,
            "total_roi": roi(self.total_roi),
            "output_roi": roi(self.output_roi),
            "reference": {
                str(k): roi(s.roi) for k, s in sorted(self.reference.items()) if s.roi is not None
            },
            "voxel_size": list(self.voxel_size),
            "chunk_shape": list(self.chunk_shape),
            "grid": list(self.grid),
            "outputs": {str(k): v for k, v in self.outputs.items()},
            "seed": int(self.seed),
        }

    def describe(self, done: int | None = None, existing: dict[str, Any] | None = None) -> str:
        """A human-readable plan: blocks, chunking, expected output."""
        vs = self.voxel_size
        inputs = {
            str(k): s.roi.shape
            for k, s in self.reference.items()
            if s.roi is not None and k not in self.outputs
        }
        lines = [
            f"blockwise plan for {self.container}",
            f"  output ROI       {self.total_roi} (world units), voxel size {tuple(vs)}",
            f"  block            output {tuple(self.block_shape)} = "
            f"{tuple(self.block_shape / vs)} voxels"
            + (
                f"; inputs {', '.join(f'{k} {tuple(s)}' for k, s in inputs.items())}"
                if inputs
                else ""
            ),
            f"  grid             {' x '.join(map(str, self.grid))} = {self.num_blocks} blocks",
            f"  chunks           {tuple(self.chunk_shape)} voxels "
            f"({int(np.prod(self.block_shape / vs) // np.prod(self.chunk_shape))} per full block)",
        ]
        if done is not None:
            lines.append(
                f"  progress         {done} of {self.num_blocks} blocks done, "
                f"{self.num_blocks - done} to run"
            )
        lines.append("  outputs:")
        shape = tuple(self.total_roi.shape / vs)
        for key, ds in self.outputs.items():
            dtype = self.dtypes.get(key)
            state = (existing or {}).get(ds)
            where = f"{self.container}/{ds}"
            if state is not None:
                lines.append(f"    {key} -> {where}: exists, shape {state[0]}, dtype {state[1]}")
            else:
                lines.append(
                    f"    {key} -> {where}: new, shape (channels..., {', '.join(map(str, shape))}),"
                    f" dtype {'from the first block' if dtype is None else np.dtype(dtype)}, "
                    f"offset {tuple(self.total_roi.offset)}"
                )
        lines.append(f"  done markers     {self.container}/{self.done_path}")
        return "\n".join(lines)


def _snap(c: Coordinate, grid: Coordinate, up: bool) -> Coordinate:
    return Coordinate((-(-v // g) if up else v // g) * g for v, g in zip(c, grid))


def make_plan(
    provided: ProviderSpec,
    reference: BatchRequest,
    outputs: Mapping[ArrayKey, str],
    container: str,
    total_roi: Roi | None = None,
    chunk_shape: Any = None,
    seed: int = 0,
) -> BlockPlan:
    """The block grid for `reference` over `total_roi` (default: everything the reference
    can be shifted over inside the `provided` ROIs). Raises ValueError on a bad geometry."""
    if not outputs:
        raise ValueError("blockwise: no outputs given; pass {ArrayKey: 'dataset'}")
    missing = [k for k in list(outputs) + list(reference) if k not in provided]
    if missing:
        raise ValueError(
            f"blockwise: {sorted(set(missing))} not provided by the pipeline "
            f"(it provides {sorted(provided)})"
        )
    unrequested = [k for k in outputs if k not in reference or reference[k].roi is None]
    if unrequested:
        raise ValueError(
            f"blockwise: outputs {unrequested} must be in the reference request with a ROI "
            "(the output block)"
        )
    keys = list(outputs)
    output_roi = reference[keys[0]].roi
    for k in keys[1:]:
        if reference[k].roi != output_roi:
            raise ValueError(
                f"blockwise: all outputs must have the same reference ROI; {keys[0]} has "
                f"{output_roi}, {k} has {reference[k].roi}"
            )
    vs = provided[keys[0]].voxel_size or Coordinate((1,) * output_roi.dims)
    spatial = [k for k, s in reference.items() if s.roi is not None]
    lcm = provided.get_lcm_voxel_size([k for k in spatial if isinstance(k, ArrayKey)]) or vs
    if total_roi is None:
        lo, hi = None, None
        for k in spatial:
            have = provided[k].roi
            if have is None or have.unbounded:
                raise ValueError(
                    f"blockwise: {k} is provided with ROI {have}; pass total_roi explicitly"
                )
            b, e = have.begin - reference[k].roi.begin, have.end - reference[k].roi.end
            lo = b if lo is None else Coordinate(max(x, y) for x, y in zip(lo, b))
            hi = e if hi is None else Coordinate(min(x, y) for x, y in zip(hi, e))
        lo, hi = _snap(lo, lcm, up=True), _snap(hi, lcm, up=False)
        if any(h < l for l, h in zip(lo, hi)):
            raise ValueError(
                "blockwise: the reference request does not fit into the provided ROIs "
                f"{ {str(k): provided[k].roi for k in spatial} }"
            )
        total_roi = Roi(output_roi.begin + lo, output_roi.shape + (hi - lo))
    if total_roi.unbounded or total_roi.empty:
        raise ValueError(f"blockwise: total ROI {total_roi} must be bounded and non-empty")
    if any(t < b for t, b in zip(total_roi.shape, output_roi.shape)):
        raise ValueError(
            f"blockwise: total ROI {total_roi} is smaller than one output block "
            f"{tuple(output_roi.shape)}; use a smaller reference output"
        )
    for name, c in (
        ("offset of", total_roi.begin - output_roi.begin),
        ("shape of", total_roi.shape),
    ):
        if not c.is_multiple_of(lcm):
            raise ValueError(
                f"blockwise: the {name} total ROI {total_roi} (relative to the reference output "
                f"{output_roi}) is not a multiple of the voxel size {tuple(lcm)}"
            )
    block_voxels = output_roi.shape / vs
    chunks = block_voxels if chunk_shape is None else Coordinate(chunk_shape)
    if not block_voxels.is_multiple_of(chunks):
        raise ValueError(
            f"blockwise: chunk shape {tuple(chunks)} must divide the block's "
            f"{tuple(block_voxels)} voxels, so that no two blocks write the same chunk"
        )
    dtypes = {k: provided[k].dtype for k in keys if provided[k].dtype is not None}
    return BlockPlan(
        reference.copy(), dict(outputs), str(container), total_roi, output_roi, vs, chunks,
        int(seed), dtypes,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the work of one block (runs in a Dask worker, or in this process)


@dataclass
class BlockResult:
    """What happened to one block (small: results travel back to the driver)."""

    flat: int
    index: tuple[int, ...]
    write_roi: Roi
    ok: bool
    attempts: int
    seconds: float = 0.0
    rss: int = 0
    pid: int = 0
    error: str = ""
    traceback: str = ""
    setup_failed: bool = False


@dataclass
class Job:
    """Everything a worker needs for a run: shipped once per worker (a Dask task's result)."""

    token: str
    pipeline: Any  # a Pipeline, or a callable returning one
    plan: BlockPlan
    retries: int = 2
    dataset_dtypes: dict[ArrayKey, Any] = field(default_factory=dict)
    compression_type: Any = None
    zarr_format: int = 2


_lock = threading.Lock()
_built: OrderedDict[str, Pipeline] = OrderedDict()
_open: dict[tuple[str, str], Any] = {}
_KEEP_BUILT = 2


def _pipeline_for(job: Job) -> Pipeline:
    """The built pipeline of `job` in this process (built once, kept for the run)."""
    with _lock:
        if job.token in _built:
            _built.move_to_end(job.token)
            return _built[job.token]
        source = job.pipeline
        if not isinstance(source, Composable) and callable(source):
            source = source()
        pipeline = Pipeline.of(source)
        pipeline.setup()
        _built[job.token] = pipeline
        while len(_built) > _KEEP_BUILT:
            _, old = _built.popitem(last=False)
            _teardown_quietly(old)
        return pipeline


def release(token: str) -> None:
    """Tear down the pipeline of run `token` in this process and forget its open arrays."""
    with _lock:
        pipeline = _built.pop(token, None)
        for k in [k for k in _open if k[0] == token]:
            del _open[k]
    if pipeline is not None:
        _teardown_quietly(pipeline)


def _teardown_quietly(pipeline: Pipeline) -> None:
    try:
        pipeline.teardown()
    except Exception:
        pass


def _zarr_array(job: Job, path: str, create: Callable[[], Any] | None = None) -> Any:
    key = (job.token, path)
    with _lock:
        if key not in _open:
            if create is not None:
                _open[key] = create()
            else:
                import zarr

                _open[key] = zarr.open_array(job.plan.container, path=path, mode="r+")
        return _open[key]


def _write_block(job: Job, block: Block, batch: Any) -> None:
    plan = job.plan
    for key, ds in plan.outputs.items():
        array = batch[key].crop(block.write_roi, copy=False)
        data = np.asarray(array.data)
        dtype = np.dtype(job.dataset_dtypes.get(key, data.dtype))
        dims = plan.total_roi.dims

        def create(data=data, dtype=dtype, ds=ds, dims=dims) -> Any:
            return open_or_create_zarr(
                plan.container, ds, plan.total_roi, plan.voxel_size,
                tuple(data.shape[:-dims]), dtype, tuple(plan.chunk_shape),
                job.compression_type, job.zarr_format,
            )  # fmt: skip

        target = _zarr_array(job, ds, create)
        index = (Ellipsis,) + (
            (block.write_roi - plan.total_roi.offset) / plan.voxel_size
        ).to_slices()
        target[index] = data.astype(target.dtype, copy=False)
    _zarr_array(job, plan.done_path)[block.index] = 1


def _hold(job: Job) -> Job:
    return job


def _rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return 0


def process_block(job: Job, flat: int) -> BlockResult:
    """Compute block `flat`, write its cell, mark it done; retry up to `job.retries` times.

    Never raises for errors of the pipeline: they come back in the result (with traceback).
    """
    block = job.plan.block(flat)
    t0 = time.perf_counter()
    error, tb, setup_failed = "", "", False
    attempts = 0
    for attempt in range(job.retries + 1):
        attempts = attempt + 1
        try:
            try:
                pipeline = _pipeline_for(job)
            except Exception:
                setup_failed = True
                raise
            batch = pipeline.request_batch(job.plan.request(block))
            _write_block(job, block, batch)
            return BlockResult(
                flat, block.index, block.write_roi, True, attempts,
                time.perf_counter() - t0, _rss(), os.getpid(),
            )  # fmt: skip
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            tb = traceback.format_exc()
            if setup_failed:
                break
    return BlockResult(
        flat, block.index, block.write_roi, False, attempts, time.perf_counter() - t0,
        _rss(), os.getpid(), error, tb, setup_failed,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the driver


@dataclass
class BlockwiseSummary:
    """The outcome of a run: counts, failed blocks (ROI + traceback), timing."""

    plan: BlockPlan
    skipped: int = 0
    done: int = 0
    failed: list[BlockResult] = field(default_factory=list)
    not_run: int = 0
    interrupted: bool = False
    dry_run: bool = False
    aborted: str = ""
    seconds: float = 0.0
    block_seconds: float = 0.0
    worker_rss: dict[int, tuple[int, int, int]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and not self.aborted and not self.not_run

    @property
    def blocks_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def max_rss(self) -> int:
        """The largest resident memory (bytes) a worker process reported after a block."""
        return max((peak for _, peak, _ in self.worker_rss.values()), default=0)

    def add(self, result: BlockResult) -> None:
        """Count `result` (memory stays bounded: only failures are kept whole)."""
        self.block_seconds += result.seconds
        if result.pid:
            first, peak, count = self.worker_rss.get(result.pid, (result.rss, 0, 0))
            self.worker_rss[result.pid] = (first, max(peak, result.rss), count + 1)
        if result.ok:
            self.done += 1
        else:
            self.failed.append(result)

    def __str__(self) -> str:
        p = self.plan
        if self.dry_run:
            return f"dry run: nothing computed ({self.skipped} of {p.num_blocks} blocks done)"
        state = "interrupted" if self.interrupted else ("aborted" if self.aborted else "finished")
        lines = [
            f"blockwise {state}: {p.num_blocks} blocks; {self.done} computed now, "
            f"{self.skipped} already done, {len(self.failed)} failed, {self.not_run} not run; "
            f"{self.seconds:.1f} s ({self.blocks_per_second:.2f} blocks/s)"
        ]
        if self.aborted:
            lines.append(f"aborted: {self.aborted}")
        for r in self.failed:
            lines.append(
                f"FAILED block {r.index} (writes ROI {r.write_roi}) after {r.attempts} "
                f"attempt(s): {r.error}"
            )
            lines.extend("    " + line for line in r.traceback.rstrip().splitlines())
        if not self.ok:
            lines.append(
                f"output: {p.container}; rerun the same command to resume: done blocks are "
                "skipped, failed and missing ones are computed"
            )
        return "\n".join(lines)


class BlockwiseInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: carries the summary of what was done (rerun to resume)."""

    def __init__(self, summary: BlockwiseSummary) -> None:
        super().__init__(str(summary))
        self.summary = summary


def _open_done(plan: BlockPlan, overwrite: bool, zarr_format: int) -> Any:
    """The done-marker array of `plan` (created, or checked against the plan if it exists)."""
    import zarr

    from .nodes.hdf5like_write_base import _existing_format

    root = zarr.open_group(
        plan.container, mode="a", zarr_format=_existing_format(plan.container, zarr_format)
    )
    fingerprint = json.loads(json.dumps(plan.fingerprint()))
    if plan.done_path in root:
        done = root[plan.done_path]
        if dict(done.attrs).get("plan") == fingerprint and not overwrite:
            return done
        if not overwrite:
            raise ValueError(
                f"blockwise: {plan.container} holds a run with a different plan "
                f"({dict(done.attrs).get('plan')}); this run's plan is {fingerprint}. "
                "Write to a new output, or pass overwrite=True to start over"
            )
    if overwrite:
        for path in [plan.done_path, *plan.outputs.values()]:
            if path in root:
                del root[path]
    done = root.create_array(
        plan.done_path,
        shape=plan.grid,
        chunks=(1,) * len(plan.grid),
        dtype=np.uint8,
        fill_value=0,
        overwrite=True,
    )
    done.attrs["plan"] = fingerprint
    return done


def _existing_outputs(plan: BlockPlan) -> dict[str, Any]:
    import zarr

    if not os.path.exists(plan.container):
        return {}
    root = zarr.open_group(plan.container, mode="r")
    found = {}
    for ds in plan.outputs.values():
        if ds in root:
            found[ds] = (tuple(root[ds].shape), root[ds].dtype)
    return found


def done_blocks(plan: BlockPlan) -> np.ndarray:
    """The flat indices of the blocks marked done in `plan`'s container (empty if none)."""
    import zarr

    try:
        done = zarr.open_array(plan.container, path=plan.done_path, mode="r")
    except Exception:
        return np.zeros(0, dtype=np.int64)
    if dict(done.attrs).get("plan") != json.loads(json.dumps(plan.fingerprint())):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(_done_mask(done, plan))


def _done_mask(done: Any, plan: BlockPlan) -> np.ndarray:
    """The done markers, flat (1 = done). A local zarr v2 array is read by listing its chunk
    files (one per done block, never one per block), anything else by reading the array."""
    folder = os.path.join(plan.container, plan.done_path)
    if done.metadata.zarr_format == 2 and os.path.isdir(folder):
        mask = np.zeros(plan.num_blocks, dtype=np.uint8)
        grid = plan.grid
        for entry in os.scandir(folder):
            parts = entry.name.split(".")
            if len(parts) == len(grid) and all(p.isdigit() for p in parts):
                mask[np.ravel_multi_index(tuple(int(p) for p in parts), grid)] = 1
        return mask
    return np.asarray(done[...]).ravel()


def plan_for(
    pipeline: Any,
    reference: BatchRequest,
    outputs: Mapping[ArrayKey, str],
    container: str,
    total_roi: Roi | None = None,
    chunk_shape: Any = None,
    seed: int = 0,
) -> BlockPlan:
    """Build `pipeline` (a Pipeline or a callable returning one) here to learn what it
    provides, then make the plan."""
    source = (
        pipeline() if (not isinstance(pipeline, Composable) and callable(pipeline)) else pipeline
    )
    with build(source) as p:
        provided = p.spec.copy()
    return make_plan(provided, reference, outputs, container, total_roi, chunk_shape, seed)


def run_blockwise(
    pipeline: Any,
    reference: BatchRequest,
    outputs: Mapping[ArrayKey, str],
    container: str,
    total_roi: Roi | None = None,
    *,
    client: Any = None,
    workers: int = 2,
    scheduler_address: str | None = None,
    max_in_flight: int | None = None,
    retries: int = 2,
    chunk_shape: Any = None,
    dataset_dtypes: Mapping[ArrayKey, Any] | None = None,
    compression_type: Any = None,
    zarr_format: int = 2,
    seed: int = 0,
    progress: bool = True,
    dry_run: bool = False,
    overwrite: bool = False,
    plan: BlockPlan | None = None,
) -> BlockwiseSummary:
    """Process `total_roi` in blocks of `reference` and write `outputs` ({key: dataset}) into
    the zarr `container`; skip blocks already done there.

    Where it runs: a given Dask `client` (any cluster, e.g. dask-jobqueue), else the scheduler
    at `scheduler_address`, else a new `LocalCluster` of `workers` processes, or (workers=0)
    this process. At most `max_in_flight` blocks are submitted at a time (default 2 per worker
    thread). A failing block is retried `retries` times, then reported in the summary; the
    others go on. `dry_run` prints the plan and computes nothing. Ctrl-C raises
    `BlockwiseInterrupted` carrying the summary.
    """
    t0 = time.perf_counter()
    if plan is None:
        plan = plan_for(pipeline, reference, outputs, container, total_roi, chunk_shape, seed)
    if dataset_dtypes:
        plan = replace(plan, dtypes={**plan.dtypes, **dataset_dtypes})
    summary = BlockwiseSummary(plan)
    if dry_run:
        done = done_blocks(plan)
        print(plan.describe(len(done), _existing_outputs(plan)))
        summary.dry_run = True
        summary.skipped = len(done)
        return summary
    done_array = _open_done(plan, overwrite, zarr_format)
    todo = np.flatnonzero(_done_mask(done_array, plan) == 0)
    summary.skipped = plan.num_blocks - len(todo)
    job = Job(
        uuid.uuid4().hex, pipeline, plan, int(retries), dict(dataset_dtypes or {}),
        compression_type, zarr_format,
    )  # fmt: skip
    runner: _Runner
    if client is None and scheduler_address is None and workers == 0:
        runner = _LocalRunner(job)
    else:
        runner = _DaskRunner(job, client, scheduler_address, workers, max_in_flight)
    try:
        _drive(runner, job, todo, summary, progress)
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.not_run = len(todo) - summary.done - len(summary.failed)
        summary.seconds = time.perf_counter() - t0
        runner.close()
        raise BlockwiseInterrupted(summary) from None
    except BaseException:
        runner.close()
        raise
    runner.close()
    summary.not_run = len(todo) - summary.done - len(summary.failed)
    summary.seconds = time.perf_counter() - t0
    return summary


def _drive(
    runner: _Runner, job: Job, todo: np.ndarray, summary: BlockwiseSummary, progress: bool
) -> None:
    from .progress import progress_bar as tqdm

    bar = tqdm(total=len(todo), desc="blocks", unit="block", disable=not progress)
    try:
        queue = (int(i) for i in todo)
        # the first block alone creates the output datasets (their channels and dtype come
        # from the pipeline); then the rest run concurrently
        missing = set(job.plan.outputs.values()) - set(_existing_outputs(job.plan))
        while missing:
            flat = next(queue, None)
            if flat is None:
                return
            result = next(runner.run(iter([flat])))
            _record(summary, result, bar)
            if result.ok:
                missing = set()
            elif result.setup_failed:
                summary.aborted = f"the pipeline could not be set up on a worker: {result.error}"
                return
        for result in runner.run(queue):
            _record(summary, result, bar)
            if result.setup_failed:
                summary.aborted = f"the pipeline could not be set up on a worker: {result.error}"
                return
    finally:
        bar.close()


def _record(summary: BlockwiseSummary, result: BlockResult, bar: Any) -> None:
    summary.add(result)
    if not result.ok:
        bar.set_postfix(failed=len(summary.failed))
    bar.update(1)


class _Runner:
    def run(self, flats: Iterator[int]) -> Iterator[BlockResult]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _LocalRunner(_Runner):
    """Blocks one after the other in this process."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def run(self, flats: Iterator[int]) -> Iterator[BlockResult]:
        for flat in flats:
            yield process_block(self.job, flat)

    def close(self) -> None:
        release(self.job.token)


class _DaskRunner(_Runner):
    """Blocks as Dask tasks, at most `max_in_flight` at a time; lost tasks are resubmitted."""

    def __init__(
        self,
        job: Job,
        client: Any,
        scheduler_address: str | None,
        workers: int,
        max_in_flight: int | None,
    ) -> None:
        from distributed import Client, LocalCluster

        self.job = job
        self.own_cluster = None
        self.own_client = client is None
        if client is None and scheduler_address is not None:
            client = Client(scheduler_address)
        elif client is None:
            self.own_cluster = LocalCluster(
                n_workers=max(1, workers), threads_per_worker=1, processes=True,
                dashboard_address=None,
            )  # fmt: skip
            client = Client(self.own_cluster)
        self.client = client
        threads = sum(client.nthreads().values()) or max(1, workers)
        self.window = max_in_flight or 2 * threads
        # the job as a task's result: workers fetch it once, and if the worker holding it dies
        # Dask computes it again (scattered data would be lost; this also works before any
        # worker of an adaptive cluster has started)
        self.job_future = client.submit(_hold, job, key=f"gunpowder-job-{job.token}", pure=False)
        self.in_flight: dict[Any, tuple[int, int]] = {}

    def _submit(self, ac: Any, flat: int, attempt: int) -> None:
        future = self.client.submit(
            process_block, self.job_future, flat, pure=False,
            key=f"gunpowder-block-{self.job.token[:8]}-{flat}-{attempt}",
        )  # fmt: skip
        self.in_flight[future] = (flat, attempt)
        ac.add(future)

    def run(self, flats: Iterator[int]) -> Iterator[BlockResult]:
        from distributed import as_completed

        ac = as_completed()
        for flat in flats:
            self._submit(ac, flat, 0)
            if len(self.in_flight) >= self.window:
                break
        for future in ac:
            flat, attempt = self.in_flight.pop(future)
            if future.status == "finished":
                result = future.result()
            else:  # the task itself was lost (worker died, cancelled): resubmit or report
                if attempt < self.job.retries:
                    self._submit(ac, flat, attempt + 1)
                    continue
                result = self._lost(future, flat, attempt)
            future.release()
            yield result
            while len(self.in_flight) < self.window:
                nxt = next(flats, None)
                if nxt is None:
                    break
                self._submit(ac, nxt, 0)

    def _lost(self, future: Any, flat: int, attempt: int) -> BlockResult:
        block = self.job.plan.block(flat)
        try:
            exc = future.exception()
            tb = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
            error = f"{type(exc).__name__}: {exc}"
        except Exception as e:  # cancelled futures have no exception to show
            error, tb = f"task lost ({future.status}): {e!r}", ""
        return BlockResult(
            flat, block.index, block.write_roi, False, attempt + 1, error=error, traceback=tb
        )

    def close(self) -> None:
        client = self.client
        try:
            if self.in_flight:
                client.cancel(list(self.in_flight))
            self.in_flight.clear()
            if client.status == "running":
                client.run(release, self.job.token)
                client.cancel([self.job_future])
        except Exception as e:  # closing must not hide the run's own outcome
            print(f"blockwise: while closing the Dask client: {e!r}", file=sys.stderr)
        if self.own_client:
            client.close()
        if self.own_cluster is not None:
            self.own_cluster.close()


__all__ = [
    "Block",
    "BlockPlan",
    "BlockResult",
    "BlockwiseInterrupted",
    "BlockwiseSummary",
    "done_blocks",
    "make_plan",
    "plan_for",
    "process_block",
    "run_blockwise",
]
