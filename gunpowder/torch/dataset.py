"""`Dataset`: a gunpowder pipeline as a torch `IterableDataset` for `DataLoader` and DDP.

Every batch has an index i and is made from seed `derive_seed(seed, i)`, exactly as the i-th
batch of `gp.stream(pipeline, request, seed=seed)`. Counting j = i - start, DDP rank r of R
owns j ≡ r (mod R); its DataLoader worker w of W serves j ≡ w·R + r (mod W·R). So
workers and ranks never repeat a batch, the same seed gives the same batches whatever the
number of workers, and a rank's `DataLoader` (which takes one item from each worker in turn)
yields its indices in increasing order: with one rank, exactly the stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

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


class Dataset(IterableDataset):
    """Batches of `pipeline` for `request` as a torch `IterableDataset`.

    Args:
        pipeline: the gunpowder pipeline (built inside each worker, not before).
        request: the `BatchRequest` made for every batch.
        seed: base seed of the batch sequence (the `seed` of `gp.stream`).
        num_batches: total batches over all workers and ranks (None: endless).
        start: index of the first batch (to continue a run where it stopped).
        as_batch: yield `gp.Batch` objects (use `DataLoader(..., batch_size=None)`) instead of
            dicts {array name: numpy array}, which the default collate stacks into tensors.
        rank, world_size: override the DDP rank and world size (default: from
            `torch.distributed` when initialised, else 0 and 1).

    Example::

        dataset = gp.torch.Dataset(pipeline, request, seed=42)
        loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2)
        for item in loader:
            raw = item["RAW"]  # a (4, ...) tensor
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
    ) -> None:
        super().__init__()
        if not isinstance(request, BatchRequest):
            raise TypeError(
                f"Dataset: request must be a BatchRequest, got {type(request).__name__}"
            )
        self.pipeline = Pipeline.of(pipeline)
        self.request = request
        self.seed = int(seed)
        self.num_batches = num_batches
        self.start = int(start)
        self.as_batch = as_batch
        self.rank = rank
        self.world_size = world_size

    def shard(self) -> tuple[int, int]:
        """(this worker's shard, number of shards) for the current worker and rank."""
        rank, world = _distributed_rank_and_size()
        rank = rank if self.rank is None else self.rank
        world = world if self.world_size is None else self.world_size
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if not 0 <= rank < world:
            raise ValueError(f"Dataset: rank {rank} is outside a world of size {world}")
        return worker * world + rank, world * workers

    def indices(self) -> Iterator[int]:
        """The batch indices this worker serves, in order."""
        shard, shards = self.shard()
        stop = None if self.num_batches is None else self.start + self.num_batches
        counter = itertools.count(self.start + shard, shards)
        return counter if stop is None else itertools.takewhile(lambda i: i < stop, counter)

    def seeds(self) -> Iterator[int]:
        """The seeds of the batches this worker serves."""
        return (derive_seed(self.seed, i) for i in self.indices())

    def __iter__(self) -> Iterator[Any]:
        with build(self.pipeline) as pipeline:
            for seed in self.seeds():
                batch = pipeline.request_batch(self.request.with_seed(seed))
                yield batch if self.as_batch else batch_to_dict(batch)


def batch_to_dict(batch: Batch) -> dict[str, Any]:
    """{array name: numpy data} for every array of `batch` (graphs are left out)."""
    return {key.identifier: array.data for key, array in batch.arrays.items()}
