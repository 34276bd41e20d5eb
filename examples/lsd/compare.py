"""Affinities alone or affinities + LSDs (MTLSD): which network segments the held-out volume
better, with the same data, U-Net, augmentations, seed and number of iterations?

Both networks are trained on the demo's generated volume (examples/cremi/make_volume.py),
predict the demo's held-out volume, and are segmented alike (`gunpowder.segment`: watershed
fragments, mean-affinity agglomeration at 0.5). Prints VOI split/merge and ARAND of both and
writes `summary.json`.

    python examples/lsd/compare.py --iterations 1500 --out lsd_compare
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see examples/cremi/train.py

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cremi"))

from demo import TEST_SHAPE, TRAIN_SHAPE, segment_and_evaluate  # noqa: E402
from make_volume import make_volume, write_cremi  # noqa: E402
from mtlsd import make_mtlsd_model, train_mtlsd  # noqa: E402
from predict import predict  # noqa: E402
from train import PRED_AFFINITIES, train  # noqa: E402

import gunpowder as gp  # noqa: E402


def run(
    out: Path,
    iterations: int,
    train_shape: Sequence[int] = TRAIN_SHAPE,
    test_shape: Sequence[int] = TEST_SHAPE,
    num_fmaps: int = 6,
    input_shape: Sequence[int] = (10, 100, 100),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, predict and segment with both networks in `out`; returns the summary."""
    out = Path(out)
    train_file = out / "data" / "train.hdf"
    test_file = out / "data" / "held_out.hdf"
    if not train_file.exists():
        write_cremi(train_file, *make_volume(train_shape, seed=1))
    test_raw, test_labels = make_volume(test_shape, seed=2)
    if not test_file.exists():
        write_cremi(test_file, test_raw, test_labels)
    voxel_size = gp.Coordinate(40, 4, 4)
    total = gp.Roi((0, 0, 0), gp.Coordinate(test_shape) * voxel_size)
    labels = gp.Array(test_labels, gp.ArraySpec(roi=total, voxel_size=voxel_size))

    common = dict(
        data=[train_file], num_fmaps=num_fmaps, input_shape=input_shape, seed=seed,
        save_every=iterations, snapshot_every=iterations, progress=progress,
    )  # fmt: skip
    networks = {
        "affinities": (train, None, 0),
        "mtlsd": (train_mtlsd, make_mtlsd_model(num_fmaps), 1),
    }
    summary: dict[str, Any] = {"iterations": iterations, "held_out_voxels": list(test_shape)}
    for name, (trainer, model, output) in networks.items():
        t0 = time.perf_counter()
        trained = trainer(iterations, out_dir=out / name, **common)
        t_train = time.perf_counter() - t0
        batch = predict(
            trained["checkpoint"], test_file, None, num_fmaps, progress=progress, model=model,
            output=output,
        )  # fmt: skip
        _, metrics = segment_and_evaluate(batch[PRED_AFFINITIES], labels)
        summary[name] = {**metrics, "train_seconds": round(t_train, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """The comparison as a small table (threshold 0.5, and the best threshold of the sweep)."""
    lines = [
        f"held-out segmentation after {summary['iterations']} iterations "
        "(agglomeration threshold 0.5; the sweep's threshold of least VOI in brackets)",
        f"{'network':<12}{'VOI split':>10}{'VOI merge':>10}{'VOI':>8}{'ARAND':>8}"
        f"{'best VOI':>12}{'its ARAND':>12}{'train s':>9}",
    ]
    for name in ("affinities", "mtlsd"):
        m = summary[name]
        lines.append(
            f"{name:<12}{m['voi_split']:>10.3f}{m['voi_merge']:>10.3f}{m['voi']:>8.3f}"
            f"{m['arand']:>8.3f}{m['best_voi']:>7.3f} ({m['best_threshold']}){m['best_arand']:>12.3f}"
            f"{m['train_seconds']:>9.0f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="lsd_compare", help="output directory")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--num-fmaps", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = run(Path(args.out), args.iterations, num_fmaps=args.num_fmaps, seed=args.seed)
    print(format_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
