"""`Dataset`: a gunpowder pipeline as a torch `IterableDataset` for `DataLoader` and DDP.

Every batch has an index i and is made from seed `derive_seed(seed, i)`, exactly as the i-th
batch of `gp.stream(pipeline, request, seed=seed)`. Counting j = i - start, DDP rank r of R
owns j ≡ r (mod R); its DataLoader worker w of W serves j ≡ w·R + r (mod W·R). So
workers and ranks never repeat a batch, the same seed gives the same batches whatever the
number of workers, and a rank's `DataLoader` (which takes one item from each worker in turn)
yields its indices in increasing order: with one rank, exactly the stream.

With `batch_size=B` an item is a whole minibatch (B consecutive batches, stacked), so the
minibatches are the same for any number of workers (use `DataLoader(..., batch_size=None)`).
A PreCache inside the pipeline computes in the DataLoader worker itself (a daemonic worker can
not start processes): the DataLoader's workers are the parallelism then.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..batch import Batch
from ..engine import derive_seed
from ..pipeline import Pipeline, build
from ..spec import BatchRequest


def _distributed_rank_and_size() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


LABEL_DTYPE = torch.int64  # unsigned labels wider than 8 bits arrive as this by default


class Dataset(IterableDataset):
    """Batches of `pipeline` for `request` as a torch `IterableDataset`.

    Items are dicts {array name: tensor}, channels first as the arrays are: `(channels...,
    z, y, x)` per batch, and with `batch_size=B` a leading batch axis `(B, channels..., z, y,
    x)`. Tensors are contiguous (mirrored arrays are copied once). Unsigned integer arrays
    wider than 8 bits (label ids: uint16/32/64, on which torch's `max`, `unique` and losses
    fail) become `label_dtype` (int64 by default); `dtypes` overrides per array name.

    Args:
        pipeline: the gunpowder pipeline (built inside each worker, not before).
        request: the `BatchRequest` made for every batch.
        seed: base seed of the batch sequence (the `seed` of `gp.stream`).
        num_batches: total items over all workers and ranks (None: endless); with
            `batch_size`, the number of minibatches.
        start: index of the first item (to continue a run where it stopped).
        as_batch: yield `gp.Batch` objects (use `DataLoader(..., batch_size=None)`) instead of
            dicts of tensors.
        rank, world_size: override the DDP rank and world size (default: from
            `torch.distributed` when initialised, else 0 and 1).
        batch_size: stack this many consecutive batches into one item (a whole minibatch made
            by one worker), so minibatches do not depend on the number of workers. Default
            None: one batch per item.
        label_dtype: the torch dtype for unsigned integer arrays wider than 8 bits (default
            torch.int64; None keeps numpy's dtype).
        dtypes: {array name: torch dtype} for particular arrays (default: none).

    `set_epoch(e)` (as for `DistributedSampler`) draws another reproducible sequence per epoch;
    epoch 0 is the stream of `seed`. `len(dataset)` is the number of items this rank yields
    when `num_batches` is given.

    Example::

        dataset = gp.torch.Dataset(pipeline, request, seed=42, num_batches=1000, batch_size=4)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
        for epoch in range(2):
            dataset.set_epoch(epoch)
            for item in loader:
                raw = item["RAW"]  # a (4, ...) tensor, the same for any num_workers
    """

    def __init__(
        self,
        pipeline: Any,
        request: BatchRequest,
        seed: int = 0,
        num_batches: int | None = None,
        start: int = 0,
        as_batch: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        batch_size: int | None = None,
        label_dtype: torch.dtype | None = LABEL_DTYPE,
        dtypes: dict[str, torch.dtype] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(request, BatchRequest):
            raise TypeError(
                f"Dataset: request must be a BatchRequest, got {type(request).__name__}"
            )
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"Dataset: batch_size must be a positive integer, got {batch_size}")
        if num_batches is not None and num_batches < 0:
            raise ValueError(f"Dataset: num_batches must be >= 0, got {num_batches}")
        self.pipeline = Pipeline.of(pipeline)
        self.request = request
        self.seed = int(seed)
        self.num_batches = num_batches
        self.start = int(start)
        self.as_batch = as_batch
        self.rank = rank
        self.world_size = world_size
        self.batch_size = None if batch_size is None else int(batch_size)
        self.label_dtype = label_dtype
        self.dtypes = dict(dtypes or {})
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the batches of epoch `epoch` (reproducible; epoch 0: the stream of `seed`)."""
        self.epoch = int(epoch)

    def epoch_seed(self) -> int:
        """The base seed of the current epoch."""
        if self.epoch == 0:
            return self.seed
        state = np.random.SeedSequence(self.seed, spawn_key=(1 << 32, self.epoch))
        return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))

    def _rank_and_world(self) -> tuple[int, int]:
        rank, world = _distributed_rank_and_size()
        rank = rank if self.rank is None else self.rank
        world = world if self.world_size is None else self.world_size
        if not 0 <= rank < world:
            raise ValueError(f"Dataset: rank {rank} is outside a world of size {world}")
        return rank, world

    def shard(self) -> tuple[int, int]:
        """(this worker's shard, number of shards) for the current worker and rank."""
        rank, world = self._rank_and_world()
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return worker * world + rank, world * workers

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("Dataset: endless (num_batches=None) has no length")
        rank, world = self._rank_and_world()
        return len(range(rank, self.num_batches, world))

    def indices(self) -> Iterator[int]:
        """The item indices this worker serves, in order."""
        shard, shards = self.shard()
        stop = None if self.num_batches is None else self.start + self.num_batches
        counter = itertools.count(self.start + shard, shards)
        return counter if stop is None else itertools.takewhile(lambda i: i < stop, counter)

    def seeds(self) -> Iterator[int]:
        """The seeds of the batches this worker serves (B per item with `batch_size=B`)."""
        base = self.epoch_seed()
        per = self.batch_size or 1
        for i in self.indices():
            for j in range(per):
                yield derive_seed(base, i * per + j)

    def __iter__(self) -> Iterator[Any]:
        if get_worker_info() is not None:
            _compute_precache_in_process()
        per = self.batch_size or 1
        with build(self.pipeline) as pipeline:
            seeds = self.seeds()
            while True:
                chunk = list(itertools.islice(seeds, per))
                if not chunk:
                    return
                batches = [pipeline.request_batch(self.request.with_seed(s)) for s in chunk]
                if self.as_batch:
                    yield batches[0] if self.batch_size is None else batches
                elif self.batch_size is None:
                    yield self.to_tensors(batch_to_dict(batches[0]))
                else:
                    dicts = [batch_to_dict(b) for b in batches]
                    stacked = {k: np.stack([d[k] for d in dicts]) for k in dicts[0]}
                    yield self.to_tensors(stacked)

    def to_tensors(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Contiguous tensors under the dtype policy (see the class docstring)."""
        out = {}
        for name, data in arrays.items():
            data = np.ascontiguousarray(data)
            dtype = self.dtypes.get(name)
            if dtype is None and self.label_dtype is not None:
                if data.dtype.kind == "u" and data.dtype.itemsize > 1:
                    dtype = self.label_dtype
            tensor = torch.from_numpy(data)
            out[name] = tensor if dtype is None else tensor.to(dtype)
        return out


def _compute_precache_in_process() -> None:
    """Inside a DataLoader worker (daemonic: it can not start processes), PreCache and
    stream(workers=N) compute in this process; the DataLoader's workers are the parallelism."""
    from ..parallel import pool

    pool._in_worker = True  # the flag worker processes of our own pool set, for the same reason


def batch_to_dict(batch: Batch) -> dict[str, Any]:
    """{array name: numpy data} for every array of `batch` (graphs are left out)."""
    return {key.identifier: array.data for key, array in batch.arrays.items()}
