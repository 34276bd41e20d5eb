"""Train a small 3D U-Net to predict affinities on CREMI data, as in gunpowder's CREMI example.

The pipeline, from the file to the network:

    Hdf5Source → Normalize → RandomLocation → ElasticAugment → SimpleAugment → IntensityAugment
    → GrowBoundary → AddAffinities → BalanceLabels → PreCache → torch.Train → Snapshot

Without `--data`, a CREMI-like volume is generated first (see make_volume.py). Training
resumes from the newest checkpoint in the output directory.

    python examples/cremi/train.py --iterations 2000 --out cremi_run
    python examples/cremi/train.py --data sample_A_20160501.hdf --iterations 100000
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a small or busy machine a spinning torch
# thread pool can make every step several times slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from make_volume import LABELS_DATASET, RAW_DATASET, make_volume, write_cremi  # noqa: E402
from unet import AffinityNet, small_unet  # noqa: E402

import gunpowder as gp  # noqa: E402
import gunpowder.torch as gp_torch  # noqa: E402

RAW = gp.ArrayKey("RAW")
GT_LABELS = gp.ArrayKey("GT_LABELS")
GT_AFFINITIES = gp.ArrayKey("GT_AFFINITIES")
LOSS_WEIGHTS = gp.ArrayKey("LOSS_WEIGHTS")
PRED_AFFINITIES = gp.ArrayKey("PRED_AFFINITIES")

#: affinities to the previous voxel along z, y and x
NEIGHBORHOOD = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
DEFAULT_INPUT_SHAPE = (10, 100, 100)


def make_model(num_fmaps: int = 6) -> AffinityNet:
    """The example's network: `small_unet` with a 3-channel sigmoid head."""
    return AffinityNet(small_unet(num_fmaps), num_affinities=len(NEIGHBORHOOD))


def affinity_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per affinity, weighted by BalanceLabels' class-balancing scales."""
    return torch.nn.functional.binary_cross_entropy(pred, target.float(), weight=weights)


def shapes(model: AffinityNet, input_shape: Sequence[int]) -> tuple[gp.Coordinate, gp.Coordinate]:
    """(input, output) shapes in voxels: `input_shape` rounded up to what the U-Net takes."""
    input_shape = gp.Coordinate(model.unet.valid_input_shape(input_shape))
    return input_shape, gp.Coordinate(model.output_shape(input_shape))


def training_request(model: AffinityNet, input_shape: Sequence[int], voxel_size: Any):
    """The request of one training batch: raw around the (smaller) affinities and weights."""
    voxel_size = gp.Coordinate(voxel_size)
    inp, out = shapes(model, input_shape)
    request = gp.BatchRequest()
    request.add(RAW, inp * voxel_size)
    request.add(GT_AFFINITIES, out * voxel_size)
    request.add(LOSS_WEIGHTS, out * voxel_size)
    request.add(PRED_AFFINITIES, out * voxel_size)
    return request


def read_voxel_size(path: str | Path) -> gp.Coordinate:
    """The `resolution` attribute of the raw dataset of a CREMI file (40, 4, 4 if absent)."""
    import h5py

    with h5py.File(path, "r") as f:
        return gp.Coordinate(f[RAW_DATASET].attrs.get("resolution", (40, 4, 4)))


def sources(data: Sequence[str | Path]) -> Any:
    """One Hdf5Source per file (normalised, at a random location), a random one per batch."""
    providers = tuple(
        gp.Hdf5Source(
            path,
            datasets={RAW: RAW_DATASET, GT_LABELS: LABELS_DATASET},
            array_specs={
                RAW: gp.ArraySpec(interpolatable=True),
                GT_LABELS: gp.ArraySpec(interpolatable=False),
            },
        )
        + gp.Normalize(RAW)
        + gp.RandomLocation()
        for path in data
    )
    return providers[0] if len(providers) == 1 else providers + gp.RandomProvider()


def augmentations() -> Any:
    """The CREMI example's augmentations: elastic (with slips and shifts), mirror and
    transpose in-plane, intensity per section."""
    return (
        gp.ElasticAugment(
            control_point_spacing=[4, 40, 40],
            jitter_sigma=[0, 2, 2],
            rotation_interval=[0, math.pi / 2.0],
            prob_slip=0.05,
            prob_shift=0.05,
            max_misalign=10,
            subsample=8,
        )
        + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1, z_section_wise=True)
    )


def affinity_targets() -> Any:
    """Labels → affinities (boundaries grown by one voxel in-plane) and balancing weights."""
    return (
        gp.GrowBoundary(GT_LABELS, steps=1, only_xy=True)
        + gp.AddAffinities(NEIGHBORHOOD, GT_LABELS, GT_AFFINITIES)
        + gp.BalanceLabels(GT_AFFINITIES, LOSS_WEIGHTS)
    )


def training_pipeline(
    data: Sequence[str | Path],
    model: AffinityNet,
    optimizer: torch.optim.Optimizer,
    out_dir: str | Path,
    save_every: int = 500,
    snapshot_every: int = 500,
    num_workers: int = 1,
    cache_size: int = 4,
) -> tuple[Any, gp_torch.Train]:
    """Sources (one per file, a random one per batch) → augmentations → targets → Train."""
    out_dir = Path(out_dir)
    train = gp_torch.Train(
        model,
        affinity_loss,
        optimizer,
        inputs={0: RAW},
        outputs={0: PRED_AFFINITIES},
        loss_inputs={0: PRED_AFFINITIES, 1: GT_AFFINITIES, 2: LOSS_WEIGHTS},
        checkpoint_basename=str(out_dir / "model"),
        save_every=save_every,
        log_dir=out_dir / "log",
    )
    pipeline = (
        sources(data)
        + augmentations()
        + affinity_targets()
        + gp.PreCache(cache_size=cache_size, num_workers=num_workers)
        + train
        + gp.Snapshot(
            {
                RAW: "volumes/raw",
                GT_AFFINITIES: "volumes/labels/affinities",
                PRED_AFFINITIES: "volumes/predicted_affinities",
                LOSS_WEIGHTS: "volumes/loss_weights",
            },
            output_dir=out_dir / "snapshots",
            output_filename="batch_{iteration}.zarr",
            every=snapshot_every,
        )
    )
    return pipeline, train


def train(
    iterations: int,
    data: Sequence[str | Path] | None = None,
    out_dir: str | Path = "cremi_run",
    num_fmaps: int = 6,
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    learning_rate: float = 1e-3,
    seed: int = 0,
    save_every: int = 500,
    snapshot_every: int = 500,
    num_workers: int = 1,
    progress: bool = True,
    make: Callable[[int], torch.nn.Module] = make_model,
    pipeline_fn: Callable[..., tuple[Any, gp_torch.Train]] = training_pipeline,
    request_fn: Callable[..., gp.BatchRequest] = training_request,
) -> dict[str, Any]:
    """Train until `iterations` (counting earlier runs in `out_dir`); returns a summary.

    `make(num_fmaps)`, `pipeline_fn` and `request_fn` build the network, the training
    pipeline and the batch request (default: this example's; examples/lsd passes its own).
    Every request carries the same seed: PreCache then hands out the batches of seeds
    `derive_seed(run_seed, k)`, k = 0, 1, ..., whatever its number of workers. A resumed run
    starts from `run_seed = derive_seed(seed, first iteration)`, new batches but reproducible.
    """
    from gunpowder.progress import progress_bar as tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not data:
        path = out_dir / "data" / "train.hdf"
        if not path.exists():
            write_cremi(path, *make_volume((40, 256, 256), seed=1))
        data = [path]
    torch.manual_seed(seed)
    model = make(num_fmaps)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    pipeline, train_node = pipeline_fn(
        data, model, optimizer, out_dir, save_every, snapshot_every, num_workers
    )
    request = request_fn(model, input_shape, read_voxel_size(data[0]))
    losses = []
    start_time = time.perf_counter()
    with gp.build(pipeline):
        first = train_node.iteration
        bar = tqdm(
            range(first, iterations),
            desc="training",
            unit="it",
            disable=not progress,
            initial=first,
            total=iterations,
        )
        request = request.with_seed(gp.derive_seed(seed, first))
        for i in bar:
            batch = pipeline.request_batch(request)
            losses.append(batch.loss)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        bar.close()
        last = train_node.iteration
    return {
        "first_iteration": first,
        "iterations": last,
        "losses": losses,
        "seconds": time.perf_counter() - start_time,
        "checkpoint": str(gp_torch.latest_checkpoint(out_dir / "model")[1]),
        "log": str(out_dir / "log" / "loss.csv"),
        "num_fmaps": num_fmaps,
        "input_shape": tuple(shapes(model, input_shape)[0]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="*", help="CREMI HDF5 files (default: generate one)")
    parser.add_argument("--out", default="cremi_run", help="directory for checkpoints and logs")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--num-fmaps", type=int, default=6)
    parser.add_argument("--input-shape", type=int, nargs=3, default=DEFAULT_INPUT_SHAPE)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--snapshot-every", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="PreCache worker processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = train(
        args.iterations,
        args.data,
        args.out,
        num_fmaps=args.num_fmaps,
        input_shape=args.input_shape,
        learning_rate=args.learning_rate,
        seed=args.seed,
        save_every=args.save_every,
        snapshot_every=args.snapshot_every,
        num_workers=args.workers,
    )
    losses = summary["losses"]
    if losses:
        print(
            f"iterations {summary['first_iteration']}→{summary['iterations']} in "
            f"{summary['seconds']:.0f} s; loss {np.mean(losses[:20]):.4f} → "
            f"{np.mean(losses[-20:]):.4f}; checkpoint {summary['checkpoint']}"
        )
    else:
        print(f"already trained to {summary['iterations']} iterations ({summary['checkpoint']})")


if __name__ == "__main__":
    main()
