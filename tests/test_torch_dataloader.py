"""gp.torch.Dataset under DataLoader: PreCache inside, mirrored (negatively strided) arrays,
whole minibatches per worker, epochs, label dtypes, len, and DDP on CPU (gloo, 2 ranks)."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

import gunpowder as gp
from gunpowder.torch.dataset import Dataset

RAW, LABELS = gp.ArrayKey("DL_RAW"), gp.ArrayKey("DL_LABELS")
VS = gp.Coordinate(1, 1, 1)


def pipeline(precache: bool = True):
    rng = np.random.default_rng(0)
    raw = rng.random((20, 30, 30), dtype=np.float32)
    labels = rng.integers(0, 2**40, (20, 30, 30), dtype=np.uint64)
    roi = gp.Roi((0, 0, 0), (20, 30, 30))
    spec = gp.ArraySpec(roi=roi, voxel_size=VS, interpolatable=True)
    lspec = gp.ArraySpec(roi=roi, voxel_size=VS, interpolatable=False)
    p = (
        gp.ArraySource(RAW, gp.Array(raw, spec)),
        gp.ArraySource(LABELS, gp.Array(labels, lspec)),
    ) + gp.MergeProvider()
    p += gp.RandomLocation()
    p += gp.SimpleAugment()  # mirrors: negative strides reach the collate
    if precache:
        p += gp.PreCache(cache_size=4, num_workers=2)
    return p


def request() -> gp.BatchRequest:
    r = gp.BatchRequest()
    r.add(RAW, gp.Coordinate(4, 8, 8))
    r.add(LABELS, gp.Coordinate(4, 8, 8))
    return r


def collect(num_workers: int, batch_size: int, epochs=(0,), precache=True):
    dataset = Dataset(pipeline(precache), request(), seed=7, num_batches=4, batch_size=batch_size)
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    out = []
    for e in epochs:
        dataset.set_epoch(e)
        out.append([{k: v.clone() for k, v in item.items()} for item in loader])
    return out


@pytest.mark.parametrize("batch_size", [1, 3])
def test_minibatches_do_not_depend_on_workers_and_precache_runs_inside(batch_size):
    zero = collect(0, batch_size, epochs=(0, 1))
    two = collect(2, batch_size, epochs=(0, 1))
    for epoch_zero, epoch_two in zip(zero, two, strict=True):
        assert len(epoch_zero) == len(epoch_two) == 4
        for a, b in zip(epoch_zero, epoch_two, strict=True):
            assert a["DL_RAW"].shape == (batch_size, 4, 8, 8)
            assert a["DL_RAW"].is_contiguous() and a["DL_LABELS"].dtype == torch.int64
            torch.testing.assert_close(a["DL_RAW"], b["DL_RAW"])
            torch.testing.assert_close(a["DL_LABELS"], b["DL_LABELS"])
    # two epochs draw different batches, each reproducible
    assert not torch.equal(zero[0][0]["DL_RAW"], zero[1][0]["DL_RAW"])
    again = collect(0, batch_size, epochs=(1,))
    torch.testing.assert_close(again[0][0]["DL_RAW"], zero[1][0]["DL_RAW"])


def test_precache_changes_no_batch():
    with_precache = collect(0, 1, precache=True)[0]
    without = collect(0, 1, precache=False)[0]
    for a, b in zip(with_precache, without, strict=True):
        torch.testing.assert_close(a["DL_RAW"], b["DL_RAW"])


def test_len_label_dtype_option_and_default_collate():
    dataset = Dataset(pipeline(False), request(), seed=1, num_batches=6, label_dtype=None)
    assert len(dataset) == 6
    loader = DataLoader(dataset, batch_size=2, num_workers=0)
    assert len(loader) == 3
    items = list(loader)
    assert items[0]["DL_RAW"].shape == (2, 4, 8, 8)
    assert items[0]["DL_LABELS"].dtype == torch.uint64
    assert len(Dataset(pipeline(False), request(), num_batches=5, world_size=2, rank=1)) == 2
    with pytest.raises(TypeError, match="endless"):
        len(Dataset(pipeline(False), request()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Conv3d(1, 1, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    dataset = Dataset(pipeline(False), request(), seed=3, num_batches=6)
    seeds = list(dataset.seeds())
    for item in DataLoader(dataset, batch_size=None, num_workers=0):
        optimizer.zero_grad()
        loss = model(item["DL_RAW"][None, None]).square().mean()
        loss.backward()
        optimizer.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save({"seeds": seeds, "weights": weights}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_ranks_get_disjoint_batches_and_agree_on_weights(tmp_path):
    port = _free_port()
    mp.spawn(_ddp_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert len(r0["seeds"]) == len(r1["seeds"]) == 3
    assert not set(r0["seeds"]) & set(r1["seeds"])
    assert set(r0["seeds"]) | set(r1["seeds"]) == {gp.derive_seed(3, i) for i in range(6)}
    torch.testing.assert_close(r0["weights"], r1["weights"])
