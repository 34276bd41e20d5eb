"""The one-command demo: make a CREMI-like volume, train a 3D U-Net, predict a held-out volume.

Writes `demo/report.png` (raw, ground truth, predicted affinities, loss curve) and prints the
loss at the start and end of training and the held-out affinity accuracy next to the
accuracy of predicting "connected" everywhere (the all-ones baseline).

    python examples/cremi/demo.py            # what `make demo` runs
    python examples/cremi/demo.py --iterations 300 --out /tmp/demo
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a small or busy machine a spinning torch
# thread pool can make every step several times slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from make_volume import make_volume, write_cremi  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from predict import predict  # noqa: E402
from train import GT_AFFINITIES, PRED_AFFINITIES, train  # noqa: E402

import gunpowder as gp  # noqa: E402
from gunpowder.plot import read_loss_log, show_array, show_loss  # noqa: E402

TRAIN_SHAPE = (40, 256, 256)
TEST_SHAPE = (24, 200, 200)
AXES = ("z", "y", "x")


def affinity_accuracy(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy of thresholded affinities, per channel, with the all-ones baseline and the
    recall/precision of boundaries (affinity 0)."""
    predicted = pred > threshold
    truth = gt > 0
    correct = predicted == truth
    boundary = ~truth
    found = ~predicted
    return {
        "accuracy": float(correct.mean()),
        "accuracy_per_axis": {a: float(correct[i].mean()) for i, a in enumerate(AXES)},
        "baseline": float(truth.mean()),
        "boundary_recall": float((found & boundary).sum() / max(1, boundary.sum())),
        "boundary_precision": float((found & boundary).sum() / max(1, found.sum())),
    }


def write_report(
    path: Path, raw: gp.Array, labels: gp.Array, batch: gp.Batch, log: Path, metrics: dict
) -> None:
    """report.png: a held-out section (raw, labels, true and predicted affinities), the loss."""
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    axes = fig.subplot_mosaic(
        [["raw", "labels", "gt", "pred"], ["loss", "loss", "loss", "loss"]], height_ratios=[1.2, 1]
    )
    pred = batch[PRED_AFFINITIES]
    z = pred.spec.roi.center[0]
    region = pred.spec.roi
    show_array(axes["raw"], raw, "raw", z, "held-out raw")
    show_array(axes["labels"], labels, "labels", z, "ground truth neurons")
    show_array(axes["gt"], batch[GT_AFFINITIES], "affinities", z, "true affinities (z, y, x → RGB)")
    show_array(axes["pred"], pred, "affinities", z, "predicted affinities")
    for name in ("raw", "labels", "gt", "pred"):
        axes[name].set_xlim(region.begin[2], region.end[2])
        axes[name].set_ylim(region.end[1], region.begin[1])
    columns = read_loss_log(log)
    show_loss(axes["loss"], columns["iteration"], columns["loss"])
    axes["loss"].set_title(
        f"training loss; held-out affinity accuracy {100 * metrics['accuracy']:.1f}% "
        f"(all-ones baseline {100 * metrics['baseline']:.1f}%)",
        fontsize=10,
    )
    fig.savefig(path, dpi=90)


def run(
    out: Path,
    iterations: int,
    train_shape: Sequence[int] = TRAIN_SHAPE,
    test_shape: Sequence[int] = TEST_SHAPE,
    num_fmaps: int = 6,
    input_shape: Sequence[int] = (10, 100, 100),
    progress: bool = True,
) -> dict[str, Any]:
    """The whole demo in `out` (made afresh); returns the summary it prints."""
    t0 = time.perf_counter()
    for stale in ("data", "run", "prediction.zarr", "report.png", "summary.json"):
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    train_file = write_cremi(out / "data" / "train.hdf", *make_volume(train_shape, seed=1))
    test_raw, test_labels = make_volume(test_shape, seed=2)
    test_file = write_cremi(out / "data" / "held_out.hdf", test_raw, test_labels)
    t_data = time.perf_counter() - t0

    trained = train(
        iterations,
        [train_file],
        out / "run",
        num_fmaps=num_fmaps,
        input_shape=input_shape,
        save_every=max(1, iterations // 2),
        snapshot_every=max(1, iterations // 4),
        progress=progress,
    )
    t_train = time.perf_counter() - t0 - t_data

    batch = predict(
        trained["checkpoint"],
        test_file,
        out / "prediction.zarr",
        num_fmaps,
        with_gt=True,
        progress=progress,
    )
    metrics = affinity_accuracy(batch[PRED_AFFINITIES].data, batch[GT_AFFINITIES].data)
    t_predict = time.perf_counter() - t0 - t_data - t_train

    voxel_size = gp.Coordinate(40, 4, 4)
    total = gp.Roi((0, 0, 0), gp.Coordinate(test_shape) * voxel_size)
    raw = gp.Array(test_raw, gp.ArraySpec(roi=total, voxel_size=voxel_size))
    labels = gp.Array(test_labels, gp.ArraySpec(roi=total, voxel_size=voxel_size))
    write_report(out / "report.png", raw, labels, batch, Path(trained["log"]), metrics)

    losses = trained["losses"]
    window = max(1, min(50, len(losses) // 10))
    summary = {
        "iterations": trained["iterations"],
        "loss_start": float(np.mean(losses[:window])),
        "loss_end": float(np.mean(losses[-window:])),
        "loss_window": window,
        **metrics,
        "seconds": {
            "data": round(t_data, 1),
            "train": round(t_train, 1),
            "predict": round(t_predict, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
        "report": str(out / "report.png"),
        "checkpoint": trained["checkpoint"],
        "held_out_voxels": list(test_shape),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def print_summary(s: dict[str, Any]) -> None:
    per_axis = ", ".join(f"{a} {100 * v:.1f}%" for a, v in s["accuracy_per_axis"].items())
    sec = s["seconds"]
    print(
        f"\ntrained {s['iterations']} iterations in {sec['train']:.0f} s "
        f"(data {sec['data']:.0f} s, prediction {sec['predict']:.0f} s, total {sec['total']:.0f} s)\n"
        f"loss (mean of {s['loss_window']} iterations): start {s['loss_start']:.4f}, "
        f"end {s['loss_end']:.4f}\n"
        f"held-out affinity accuracy: {100 * s['accuracy']:.1f}% ({per_axis})\n"
        f"all-ones baseline:          {100 * s['baseline']:.1f}%\n"
        f"boundaries found: recall {100 * s['boundary_recall']:.1f}%, "
        f"precision {100 * s['boundary_precision']:.1f}%\n"
        f"report: {s['report']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="demo", help="output directory (default: demo)")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--num-fmaps", type=int, default=6)
    args = parser.parse_args(argv)
    summary = run(Path(args.out), args.iterations, num_fmaps=args.num_fmaps)
    print_summary(summary)
    return 0 if summary["accuracy"] > summary["baseline"] else 1


if __name__ == "__main__":
    sys.exit(main())
