"""A multitask network (affinities + local shape descriptors, "MTLSD", Sheridan et al. 2022)
on the CREMI example's data, network and augmentations.

    Hdf5Source → Normalize → RandomLocation → ElasticAugment → SimpleAugment → IntensityAugment
    → AddLocalShapeDescriptor → GrowBoundary → AddAffinities → BalanceLabels → PreCache
    → torch.Train → Snapshot

The U-Net of examples/cremi gets two heads: 10 LSD channels and 3 affinities (both sigmoid);
the loss is the affinities' weighted cross-entropy plus the LSDs' mean squared error on
labelled voxels. Only the affinities are used for segmentation; the LSDs shape what the
network learns.

    python examples/lsd/mtlsd.py --iterations 1500 --out mtlsd_run
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see examples/cremi/train.py

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cremi"))

from train import (  # noqa: E402
    GT_AFFINITIES,
    GT_LABELS,
    LOSS_WEIGHTS,
    NEIGHBORHOOD,
    PRED_AFFINITIES,
    RAW,
    affinity_targets,
    augmentations,
    shapes,
    sources,
    train,
)
from unet import UNet, small_unet  # noqa: E402

import gunpowder as gp  # noqa: E402
import gunpowder.torch as gp_torch  # noqa: E402

GT_LSDS = gp.ArrayKey("GT_LSDS")
LSDS_WEIGHTS = gp.ArrayKey("LSDS_WEIGHTS")
PRED_LSDS = gp.ArrayKey("PRED_LSDS")

#: the descriptors' window in nm: 1 section in z, 10 voxels in-plane at 40×4×4 nm, about a
#: third of the generated neurons' width
SIGMA = 40.0
NUM_LSDS = 10


class MtlsdNet(nn.Module):
    """A U-Net with two 1×1×1 heads: (LSDs, affinities), both through a sigmoid.

    Takes raw as (z, y, x), (c, z, y, x) or (b, c, z, y, x), like `AffinityNet`.
    """

    def __init__(
        self, unet: UNet, num_affinities: int = len(NEIGHBORHOOD), num_lsds: int = NUM_LSDS
    ) -> None:
        super().__init__()
        self.unet = unet
        self.lsd_head = nn.Conv3d(unet.out_channels, num_lsds, 1)
        self.aff_head = nn.Conv3d(unet.out_channels, num_affinities, 1)

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dims = raw.dim()
        x = raw.reshape((1,) * (5 - dims) + tuple(raw.shape)) if dims < 5 else raw
        features = self.unet(x)
        lsds = torch.sigmoid(self.lsd_head(features))
        affs = torch.sigmoid(self.aff_head(features))
        return (lsds[0], affs[0]) if dims < 5 else (lsds, affs)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...] | None:
        return self.unet.output_shape(input_shape)


def make_mtlsd_model(num_fmaps: int = 6) -> MtlsdNet:
    """The example's U-Net (as examples/cremi) with the LSD and affinity heads."""
    return MtlsdNet(small_unet(num_fmaps))


def mtlsd_loss(
    pred_lsds: torch.Tensor,
    gt_lsds: torch.Tensor,
    lsds_weights: torch.Tensor,
    pred_affs: torch.Tensor,
    gt_affs: torch.Tensor,
    affs_weights: torch.Tensor,
) -> torch.Tensor:
    """Weighted BCE of the affinities + MSE of the LSDs where they are defined (labelled)."""
    affs = nn.functional.binary_cross_entropy(pred_affs, gt_affs.float(), weight=affs_weights)
    lsds = (lsds_weights * (pred_lsds - gt_lsds) ** 2).mean()
    return affs + lsds


def mtlsd_request(model: MtlsdNet, input_shape: Sequence[int], voxel_size: Any) -> gp.BatchRequest:
    """Raw around the (smaller) output: affinities, LSDs, their weights and predictions."""
    voxel_size = gp.Coordinate(voxel_size)
    inp, out = shapes(model, input_shape)
    request = gp.BatchRequest()
    request.add(RAW, inp * voxel_size)
    for key in (GT_AFFINITIES, LOSS_WEIGHTS, PRED_AFFINITIES, GT_LSDS, LSDS_WEIGHTS, PRED_LSDS):
        request.add(key, out * voxel_size)
    return request


def mtlsd_pipeline(
    data: Sequence[str | Path],
    model: MtlsdNet,
    optimizer: torch.optim.Optimizer,
    out_dir: str | Path,
    save_every: int = 500,
    snapshot_every: int = 500,
    num_workers: int = 1,
    cache_size: int = 4,
) -> tuple[Any, gp_torch.Train]:
    """examples/cremi's pipeline with LSDs (of the labels before GrowBoundary) as a target."""
    out_dir = Path(out_dir)
    train_node = gp_torch.Train(
        model,
        mtlsd_loss,
        optimizer,
        inputs={0: RAW},
        outputs={0: PRED_LSDS, 1: PRED_AFFINITIES},
        loss_inputs={
            0: PRED_LSDS,
            1: GT_LSDS,
            2: LSDS_WEIGHTS,
            3: PRED_AFFINITIES,
            4: GT_AFFINITIES,
            5: LOSS_WEIGHTS,
        },
        checkpoint_basename=str(out_dir / "model"),
        save_every=save_every,
        log_dir=out_dir / "log",
    )
    pipeline = (
        sources(data)
        + augmentations()
        + gp.AddLocalShapeDescriptor(GT_LABELS, GT_LSDS, lsds_mask=LSDS_WEIGHTS, sigma=SIGMA)
        + affinity_targets()
        + gp.PreCache(cache_size=cache_size, num_workers=num_workers)
        + train_node
        + gp.Snapshot(
            {
                RAW: "volumes/raw",
                GT_LSDS: "volumes/labels/lsds",
                PRED_LSDS: "volumes/predicted_lsds",
                GT_AFFINITIES: "volumes/labels/affinities",
                PRED_AFFINITIES: "volumes/predicted_affinities",
            },
            output_dir=out_dir / "snapshots",
            output_filename="batch_{iteration}.zarr",
            every=snapshot_every,
        )
    )
    return pipeline, train_node


def train_mtlsd(iterations: int, **kwargs: Any) -> dict[str, Any]:
    """examples/cremi's `train` loop on the MTLSD network and pipeline (same arguments)."""
    return train(
        iterations,
        make=make_mtlsd_model,
        pipeline_fn=mtlsd_pipeline,
        request_fn=mtlsd_request,
        **kwargs,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="*", help="CREMI HDF5 files (default: generate one)")
    parser.add_argument("--out", default="mtlsd_run", help="directory for checkpoints and logs")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--num-fmaps", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = train_mtlsd(
        args.iterations, data=args.data, out_dir=args.out, num_fmaps=args.num_fmaps,
        seed=args.seed,
    )  # fmt: skip
    print(f"trained to {summary['iterations']} iterations; checkpoint {summary['checkpoint']}")


if __name__ == "__main__":
    main()
