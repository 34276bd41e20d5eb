"""Dataset: DataLoader workers and DDP ranks draw disjoint, reproducible seeds; same as stream."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from gunpowder.batch import Array, Batch
from gunpowder.geometry import Roi
from gunpowder.pipeline import Source, derive_seed, stream
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from gunpowder.torch.dataset import Dataset

NOISE = ArrayKey("NOISE")


class RandomSource(Source):
    """Values drawn from the node's rng: equal batches mean equal seeds."""

    def setup(self, upstream_spec=None) -> ProviderSpec:
        return ProviderSpec({NOISE: ArraySpec(roi=Roi((0, 0), (8, 8)), voxel_size=(1, 1))})

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        spec = request[NOISE]
        batch = Batch()
        batch[NOISE] = Array(rng.random(tuple(spec.roi.shape)), spec.replace(voxel_size=(1, 1)))
        return batch


def request() -> BatchRequest:
    r = BatchRequest()
    r[NOISE] = ArraySpec(roi=Roi((2, 2), (4, 4)))
    return r


def test_two_workers_match_stream_and_draw_disjoint_seeds():
    n, seed = 9, 1234
    dataset = Dataset(RandomSource(), request(), seed=seed, num_batches=n, as_batch=True)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    batches = list(loader)
    seeds = [b.random_seed for b in batches]
    assert seeds == [derive_seed(seed, i) for i in range(n)]
    assert len(set(seeds)) == n
    expected = list(stream(RandomSource(), request(), seed=seed, num_batches=n))
    for got, want in zip(batches, expected, strict=True):
        np.testing.assert_array_equal(got[NOISE].data, want[NOISE].data)
    # reproducible: a second pass gives the same batches
    again = list(DataLoader(dataset, batch_size=None, num_workers=2))
    for a, b in zip(batches, again, strict=True):
        np.testing.assert_array_equal(a[NOISE].data, b[NOISE].data)


def test_default_collate_stacks_arrays():
    dataset = Dataset(RandomSource(), request(), seed=5, num_batches=6)
    items = list(DataLoader(dataset, batch_size=3, num_workers=0))
    assert len(items) == 2 and items[0]["NOISE"].shape == (3, 4, 4)
    expected = np.stack(
        [b[NOISE].data for b in stream(RandomSource(), request(), seed=5, num_batches=3)]
    )
    np.testing.assert_array_equal(items[0]["NOISE"].numpy(), expected)
    assert isinstance(items[0]["NOISE"], torch.Tensor)


def test_ranks_and_workers_partition_the_indices():
    """3 DDP ranks × 2 DataLoader workers: every index from `start` served exactly once."""
    n, start = 23, 4
    index_of = {derive_seed(0, i): i for i in range(start, start + n)}
    per_rank = []
    for rank in range(3):
        dataset = Dataset(
            RandomSource(),
            request(),
            num_batches=n,
            start=start,
            as_batch=True,
            rank=rank,
            world_size=3,
        )
        loader = DataLoader(dataset, batch_size=None, num_workers=2)
        per_rank.append([index_of[b.random_seed] for b in loader])
        # without DataLoader workers the rank serves the same indices, in the same order
        assert list(dataset.indices()) == per_rank[-1]
    # rank r serves the indices i ≡ start + r (mod 3) in order; together, every index once
    for rank, share in enumerate(per_rank):
        assert share == list(range(start + rank, start + n, 3))
    assert sorted(i for share in per_rank for i in share) == list(range(start, start + n))
