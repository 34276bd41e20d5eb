"""Predict affinities for a whole CREMI volume with a trained network, block by block.

    Hdf5Source → Normalize → torch.Predict → ZarrWrite → Scan

Scan cuts the volume into blocks the network takes; valid convolutions mean the prediction
covers the volume minus the network's context at each side. With `with_gt=True` the ground
truth affinities are computed alongside, exactly as for training (GrowBoundary, AddAffinities).

    python examples/cremi/predict.py cremi_run/model_checkpoint_2000 --data test.hdf \\
        --out prediction.zarr
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a small or busy machine a spinning torch
# thread pool can make every step several times slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from make_volume import LABELS_DATASET, RAW_DATASET  # noqa: E402
from train import (  # noqa: E402
    GT_AFFINITIES,
    GT_LABELS,
    NEIGHBORHOOD,
    PRED_AFFINITIES,
    RAW,
    make_model,
    read_voxel_size,
    shapes,
)

import gunpowder as gp  # noqa: E402
import gunpowder.torch as gp_torch  # noqa: E402

DEFAULT_BLOCK_SHAPE = (20, 160, 160)


def valid_roi(total: gp.Roi, context: gp.Coordinate) -> gp.Roi:
    """The part of `total` where the network has its full context."""
    return total.grow(-context, -context)


def prediction_pipeline(
    data: str | Path,
    checkpoint: str | Path | None,
    num_fmaps: int = 6,
    block_shape: Sequence[int] = DEFAULT_BLOCK_SHAPE,
    out: str | Path | None = None,
    with_gt: bool = False,
    progress: bool = True,
    model: Any = None,
    output: int | str = 0,
) -> tuple[Any, gp.BatchRequest]:
    """The pipeline and the request for the whole predictable region of `data`.

    `model` (default: the example's `make_model(num_fmaps)`) gives the affinities as its
    output `output` (an index into a returned tuple, or a key of a returned dict).
    """
    import h5py

    model = make_model(num_fmaps) if model is None else model
    voxel_size = read_voxel_size(data)
    with h5py.File(data, "r") as f:
        raw = f[RAW_DATASET]
        offset = gp.Coordinate(raw.attrs.get("offset", (0,) * raw.ndim))
        total = gp.Roi(offset, gp.Coordinate(raw.shape) * voxel_size)
    inp, outp = shapes(model, [min(b, s) for b, s in zip(block_shape, total.shape / voxel_size)])
    context = (inp - outp) // 2 * voxel_size
    region = valid_roi(total, context)
    if region.empty:
        raise ValueError(f"{data}: the volume {total} is smaller than the network's context")

    datasets = {RAW: RAW_DATASET}
    if with_gt:
        datasets[GT_LABELS] = LABELS_DATASET
    specs = {RAW: gp.ArraySpec(interpolatable=True)}
    if with_gt:
        specs[GT_LABELS] = gp.ArraySpec(interpolatable=False)
    pipeline = gp.Hdf5Source(data, datasets, array_specs=specs) + gp.Normalize(RAW)
    if with_gt:
        pipeline = (
            pipeline
            + gp.GrowBoundary(GT_LABELS, steps=1, only_xy=True)
            + gp.AddAffinities(NEIGHBORHOOD, GT_LABELS, GT_AFFINITIES)
        )
    pipeline = pipeline + gp_torch.Predict(
        model,
        inputs={0: RAW},
        outputs={output: PRED_AFFINITIES},
        array_specs={PRED_AFFINITIES: gp.ArraySpec(roi=region, voxel_size=voxel_size)},
        checkpoint=checkpoint,
    )
    if out is not None:
        out = Path(out)
        pipeline = pipeline + gp.ZarrWrite(
            {PRED_AFFINITIES: "volumes/predicted_affinities"},
            output_dir=str(out.parent),
            output_filename=out.name,
        )

    reference = gp.BatchRequest()
    reference.add(RAW, inp * voxel_size)
    reference.add(PRED_AFFINITIES, outp * voxel_size)
    request = gp.BatchRequest()
    request[PRED_AFFINITIES] = gp.ArraySpec(roi=region)
    if with_gt:
        reference.add(GT_AFFINITIES, outp * voxel_size)
        request[GT_AFFINITIES] = gp.ArraySpec(roi=region)
    return pipeline + gp.Scan(reference, progress=progress), request


def predict(
    checkpoint: str | Path | None,
    data: str | Path,
    out: str | Path | None = None,
    num_fmaps: int = 6,
    block_shape: Sequence[int] = DEFAULT_BLOCK_SHAPE,
    with_gt: bool = False,
    progress: bool = True,
    model: Any = None,
    output: int | str = 0,
) -> gp.Batch:
    """Predicted (and with `with_gt` ground-truth) affinities of `data`'s predictable region."""
    pipeline, request = prediction_pipeline(
        data, checkpoint, num_fmaps, block_shape, out, with_gt, progress, model, output
    )
    with gp.build(pipeline):
        return pipeline.request_batch(request.with_seed(0))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="a checkpoint written by train.py")
    parser.add_argument("--data", required=True, help="CREMI HDF5 file")
    parser.add_argument("--out", default="prediction.zarr", help="zarr container to write")
    parser.add_argument("--num-fmaps", type=int, default=6)
    parser.add_argument("--block-shape", type=int, nargs=3, default=DEFAULT_BLOCK_SHAPE)
    args = parser.parse_args(argv)
    batch = predict(args.checkpoint, args.data, args.out, args.num_fmaps, args.block_shape)
    array = batch[PRED_AFFINITIES]
    print(
        f"wrote {args.out}/volumes/predicted_affinities: {array.data.shape} over {array.spec.roi}"
    )


if __name__ == "__main__":
    main()
