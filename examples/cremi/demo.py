"""The one-command demo: make a CREMI-like volume, train a 3D U-Net, predict a held-out volume,
segment it.

Writes `demo/report.png` (raw, ground truth, predicted affinities, segmentation, loss curve)
and prints the loss at the start and end of training, the held-out affinity accuracy next to
the accuracy of predicting "connected" everywhere (the all-ones baseline), and the quality of
the segmentation (`gunpowder.segment`: watershed fragments, mean-affinity agglomeration)
against the held-out ground truth: VOI split/merge and adapted Rand error (CREMI's metrics).

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
from train import GT_AFFINITIES, NEIGHBORHOOD, PRED_AFFINITIES, train  # noqa: E402

import gunpowder as gp  # noqa: E402
from gunpowder import segment as gs  # noqa: E402
from gunpowder.plot import read_loss_log, show_array, show_loss  # noqa: E402

TRAIN_SHAPE = (40, 256, 256)
TEST_SHAPE = (24, 200, 200)
AXES = ("z", "y", "x")
#: the agglomeration threshold of the headline figures, and the thresholds of the sweep
THRESHOLD = 0.5
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7)


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


def segment_and_evaluate(
    affinities: gp.Array, labels: gp.Array, threshold: float = THRESHOLD, sweep=SWEEP
) -> tuple[gp.Array, dict[str, Any]]:
    """Segment the predicted affinities (`gunpowder.segment`) and measure the segmentation
    against `labels` (cropped to the prediction): VOI split/merge, ARAND at `threshold`, and
    the same for each agglomeration threshold of `sweep` (the best one is chosen on the
    held-out volume itself, so it is an optimistic figure)."""
    t0 = time.perf_counter()
    roi = affinities.spec.roi
    truth = labels.crop(roi).data
    fragments = gs.fragments(affinities.data, NEIGHBORHOOD)
    results = {}
    segmentations = {}
    for t in sorted({threshold, *sweep}):
        segmentations[t] = gs.agglomerate(fragments, affinities.data, NEIGHBORHOOD, t)
        results[t] = gs.evaluate(segmentations[t], truth)
    best = min(results, key=lambda t: results[t]["voi"])
    seg = gp.Array(segmentations[threshold], affinities.spec.replace(dtype=np.uint64))
    metrics = {
        **{k: results[threshold][k] for k in ("voi_split", "voi_merge", "voi", "arand")},
        "segments": results[threshold]["segments"],
        "objects": results[threshold]["objects"],
        "fragments": int(fragments.max()),
        "threshold": threshold,
        "sweep": {str(t): {k: round(r[k], 4) for k in ("voi_split", "voi_merge", "arand")}
                  for t, r in results.items()},
        "best_threshold": best,
        "best_voi": results[best]["voi"],
        "best_arand": results[best]["arand"],
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    return seg, metrics


def write_report(
    path: Path,
    raw: gp.Array,
    labels: gp.Array,
    batch: gp.Batch,
    log: Path,
    metrics: dict,
    segmentation: gp.Array | None = None,
    seg_metrics: dict | None = None,
) -> None:
    """report.png: a held-out section (raw, labels, true and predicted affinities, the
    segmentation), the loss."""
    fig = Figure(figsize=(16, 7.5), layout="constrained")
    top = ["raw", "labels", "gt", "pred"] + (["seg"] if segmentation is not None else [])
    axes = fig.subplot_mosaic([top, ["loss"] * len(top)], height_ratios=[1.2, 1])
    pred = batch[PRED_AFFINITIES]
    z = pred.spec.roi.center[0]
    region = pred.spec.roi
    show_array(axes["raw"], raw, "raw", z, "held-out raw")
    show_array(axes["labels"], labels, "labels", z, "ground truth neurons")
    show_array(axes["gt"], batch[GT_AFFINITIES], "affinities", z, "true affinities (z, y, x → RGB)")
    show_array(axes["pred"], pred, "affinities", z, "predicted affinities")
    if segmentation is not None and seg_metrics is not None:
        show_array(
            axes["seg"],
            segmentation,
            "labels",
            z,
            f"segmentation: VOI {seg_metrics['voi_split']:.2f} split, "
            f"{seg_metrics['voi_merge']:.2f} merge\nARAND {seg_metrics['arand']:.3f}",
        )
    for name in top:
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
    segmentation, seg_metrics = segment_and_evaluate(batch[PRED_AFFINITIES], labels)
    t_segment = time.perf_counter() - t0 - t_data - t_train - t_predict
    write_report(
        out / "report.png", raw, labels, batch, Path(trained["log"]), metrics, segmentation,
        seg_metrics,
    )  # fmt: skip

    losses = trained["losses"]
    window = max(1, min(50, len(losses) // 10))
    summary = {
        "iterations": trained["iterations"],
        "loss_start": float(np.mean(losses[:window])),
        "loss_end": float(np.mean(losses[-window:])),
        "loss_window": window,
        **metrics,
        "segmentation": seg_metrics,
        "seconds": {
            "data": round(t_data, 1),
            "train": round(t_train, 1),
            "predict": round(t_predict, 1),
            "segment": round(t_segment, 1),
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
        f"(data {sec['data']:.0f} s, prediction {sec['predict']:.0f} s, segmentation "
        f"{sec['segment']:.0f} s, total {sec['total']:.0f} s)\n"
        f"loss (mean of {s['loss_window']} iterations): start {s['loss_start']:.4f}, "
        f"end {s['loss_end']:.4f}\n"
        f"held-out affinity accuracy: {100 * s['accuracy']:.1f}% ({per_axis})\n"
        f"all-ones baseline:          {100 * s['baseline']:.1f}%\n"
        f"boundaries found: recall {100 * s['boundary_recall']:.1f}%, "
        f"precision {100 * s['boundary_precision']:.1f}%\n"
        f"{format_segmentation(s['segmentation'])}\n"
        f"report: {s['report']}"
    )


def format_segmentation(m: dict[str, Any]) -> str:
    """The segmentation's lines of the summary: VOI split/merge and ARAND, and the sweep."""
    return (
        f"segmentation (threshold {m['threshold']}): VOI split {m['voi_split']:.3f}, "
        f"VOI merge {m['voi_merge']:.3f}, ARAND {m['arand']:.3f} "
        f"({m['segments']} segments for {m['objects']} neurons, {m['fragments']} fragments)\n"
        f"best threshold on the held-out volume ({m['best_threshold']}): "
        f"VOI {m['best_voi']:.3f}, ARAND {m['best_arand']:.3f}"
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
