"""`DaisyRequestBlocks`: process the blocks a daisy scheduler hands to this worker.

Inside a daisy worker (a process started by `daisy.run_blockwise` for a task whose
`process_function` takes no arguments), a pipeline ending in this node and asked for an empty
batch loops `daisy.Client().acquire_block()` until the scheduler has no block left, and
requests upstream the `reference` with each key's ROI set to the block's read or write ROI.
The upstream's writers (`ZarrWrite`...) store the results; nothing comes back downstream.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..batch import Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..node import Node
from ..spec import BatchRequest, ProviderSpec

logger = logging.getLogger(__name__)

_ROI_TYPES = ("read_roi", "write_roi")


def _default_client() -> Any:
    try:
        import daisy
    except ImportError:
        raise PipelineSetupError(
            "DaisyRequestBlocks needs daisy: pip install 'gunpowder[daisy]' (or daisy)"
        ) from None
    return daisy.Client()


@contextlib.contextmanager
def acquire(client: Any) -> Iterator[Any]:
    """The next block of `client` (None when there is none left), released on exit.

    daisy 1.x and 2 return a context manager from `acquire_block()` that marks the block
    done, or failed if the body raises; older daisy (0.x) returns the block and wants
    `release_block(block, ret)`.
    """
    got = client.acquire_block()
    if hasattr(got, "__enter__"):
        with got as block:
            yield block
        return
    block = got
    try:
        yield block
    except BaseException:
        if block is not None:
            client.release_block(block, ret=1)
        raise
    if block is not None:
        client.release_block(block, ret=0)


class DaisyRequestBlocks(Node):
    """Request upstream, for every block daisy hands out, `reference` at that block's ROIs.

    For use in a daisy worker function (gunpowder 1.x, as lsd's predict scripts): the
    pipeline is asked for an empty batch, and this node loops over `acquire_block()` of a
    `daisy.Client` until the scheduler has no blocks left. Each key of `reference` gets the
    block's `read_roi` or `write_roi` (as `roi_map` says; the rest of its spec — voxel size,
    dtype — stays), so the reference's ROI shapes should be those of the daisy task (blocks
    that daisy shrank at the border are requested shrunk). A block whose request fails is
    reported failed to daisy (which retries it, as its task says), and the error is raised.
    Each block's request gets its own seed, derived from this node's Generator and the block
    id, so a block's content does not depend on which worker or thread processed it.

    Supports daisy 2 (PyPI `daisy`, the Rust rewrite) and daisy 1.x: their worker API is the
    same (`Client().acquire_block()` as a context manager yielding a block or None; blocks
    with `read_roi`, `write_roi` and `block_id`); daisy 0.x (`release_block`) works too.

    Args:
        reference: a BatchRequest of the keys to request per block (their ROIs' shapes are
            replaced by the block's ROIs); it is copied. Its keys must be provided upstream.
        roi_map: a dict key -> "read_roi" or "write_roi": which block ROI each key of
            `reference` gets. Every key of `reference` must be in it.
        num_workers: how many threads acquire and process blocks at the same time (each with
            its own daisy client). Default 1.
        block_done_callback: called as `block_done_callback(block, start, duration)` (seconds,
            `time.time()` and its difference) after each block processed without error,
            e.g. to record finished blocks for daisy's `check_function`. Default None.

    Example::

        raw, affs = gp.ArrayKey("RAW"), gp.ArrayKey("AFFS")
        reference = gp.BatchRequest()
        reference[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (1320, 1320, 1320)))
        reference[affs] = gp.ArraySpec(roi=gp.Roi((440, 440, 440), (440, 440, 440)))

        def worker():  # daisy.Task(..., process_function=worker): runs in each daisy worker
            pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"}) + gp.Pad(raw, None)
            pipeline += gp.torch.Predict(model, inputs={"input": raw}, outputs={0: affs})
            pipeline += gp.ZarrWrite({affs: "affs"}, output_filename="out.zarr")
            pipeline += gp.DaisyRequestBlocks(
                reference, roi_map={raw: "read_roi", affs: "write_roi"})
            with gp.build(pipeline):
                pipeline.request_batch(gp.BatchRequest())
    """

    drives_upstream = True

    def __init__(
        self,
        reference: BatchRequest,
        roi_map: Mapping[Any, str],
        num_workers: int = 1,
        block_done_callback: Callable[[Any, float, float], Any] | None = None,
    ) -> None:
        if not isinstance(reference, BatchRequest):
            raise TypeError(
                f"DaisyRequestBlocks: reference must be a BatchRequest, got "
                f"{type(reference).__name__}"
            )
        roi_map = dict(roi_map)
        for key, roi_type in roi_map.items():
            if roi_type not in _ROI_TYPES:
                raise ValueError(
                    f"DaisyRequestBlocks: roi_map[{key}] is {roi_type!r}; expected 'read_roi' "
                    "or 'write_roi'"
                )
            if key not in reference:
                raise ValueError(
                    f"DaisyRequestBlocks: roi_map has {key}, which is not in the reference "
                    f"({sorted(reference)})"
                )
        missing = [k for k in reference if k not in roi_map]
        if missing:
            raise ValueError(
                f"DaisyRequestBlocks: roi_map does not map {missing} to 'read_roi' or "
                "'write_roi'; every key of the reference needs a block ROI"
            )
        if int(num_workers) < 1:
            raise ValueError(f"DaisyRequestBlocks: num_workers must be >= 1, got {num_workers}")
        self.reference = reference.copy()
        self.roi_map = roi_map
        self.num_workers = int(num_workers)
        self.block_done_callback = block_done_callback
        # how a daisy client is made: daisy.Client() (tests substitute their own)
        self.client_factory: Callable[[], Any] = _default_client

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, *self.reference.keys())
        return upstream_spec.copy()

    def block_request(self, block: Any, seed: int | None = None) -> BatchRequest:
        """The reference with every key's ROI set to the block's read or write ROI."""
        request = BatchRequest(random_seed=seed)
        for key, spec in self.reference.items():
            roi = getattr(block, self.roi_map[key])
            request[key] = spec.replace(roi=roi)
        return request

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Callable) -> Batch:
        if len(request):
            raise PipelineRequestError(
                f"{self.name}: the request must be empty (got {sorted(request)}): the blocks "
                "are processed for their side effects (writers upstream), and which blocks "
                "this worker gets is up to the daisy scheduler"
            )
        base = int(rng.integers(0, 2**63 - 1))
        stop = threading.Event()
        errors: list[BaseException] = []

        def work() -> int:
            client = self.client_factory()
            done = 0
            while not stop.is_set():
                with acquire(client) as block:
                    if block is None:
                        break
                    start = time.time()
                    logger.debug("%s: processing block %s", self.name, block)
                    try:
                        fetch(self.block_request(block, _block_seed(base, block)))
                    except BaseException as e:
                        # kept: daisy's context manager may swallow it (marking the block
                        # failed), but this worker must not end as if all went well
                        errors.append(e)
                        stop.set()
                        raise
                    if self.block_done_callback is not None:
                        self.block_done_callback(block, start, time.time() - start)
                    done += 1
            return done

        if self.num_workers == 1:
            total = work()
        else:
            with ThreadPoolExecutor(self.num_workers, thread_name_prefix="daisy") as pool:
                futures = [pool.submit(work) for _ in range(self.num_workers)]
                total = sum(f.result() for f in futures)
        if errors:
            raise errors[0]
        logger.info("%s: processed %d blocks", self.name, total)
        return Batch()


def _block_seed(base: int, block: Any) -> int:
    """A request seed from `base` and the block's id (daisy 2: (task, index); 1.x: an int)."""
    block_id = getattr(block, "block_id", None)
    if isinstance(block_id, tuple):
        block_id = block_id[-1]
    if not isinstance(block_id, (int, np.integer)):
        block_id = zlib.crc32(str(block_id).encode())
    state = np.random.SeedSequence([base, int(block_id) % 2**63]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1
