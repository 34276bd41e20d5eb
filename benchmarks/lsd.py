"""AddLocalShapeDescriptor against lsds' node on a 56^3 batch of realistic segments.

    python benchmarks/lsd.py [--peer /tmp/gp15/bin/python] [--repeats 3] [--segments 120]

Labels are a Voronoi partition (compact, connected segments like EM neurites' pieces,
`--segments` of them in the output), at 8 nm isotropic with sigma 40 nm and at 40x4x4 nm
with sigma (80, 40, 40) nm. Ours runs in this process; lsds (a gunpowder 1.x BatchFilter)
runs in the interpreter given by `--peer` (a venv with `gunpowder==1.4.*` and `lsds`), on the
same labels, from a temporary .npz. Each figure is the median of `--repeats` batches after
one warm-up; the script prints seconds per batch, the ratio and the largest difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gunpowder as gp  # noqa: E402
from gunpowder.nodes.add_local_shape_descriptor import AddLocalShapeDescriptor  # noqa: E402

CONFIGS = {
    "iso 8nm, sigma 40": dict(voxel_size=(8, 8, 8), sigma=(40.0, 40.0, 40.0)),
    "aniso 40x4x4, sigma (80,40,40)": dict(voxel_size=(40, 4, 4), sigma=(80.0, 40.0, 40.0)),
}
OUT = (56, 56, 56)

PEER_SCRIPT = r"""
import json, sys, time, numpy as np, gunpowder as gp
from lsd.train.gp import AddLocalShapeDescriptor

class Source(gp.BatchProvider):
    def __init__(self, key, data, spec):
        self.key, self.data, self.spec_ = key, data, spec
    def setup(self):
        self.provides(self.key, self.spec_.copy())
    def provide(self, request):
        batch, spec = gp.Batch(), self.spec_.copy()
        spec.roi = request[self.key].roi
        index = ((spec.roi - self.spec_.roi.offset) / spec.voxel_size).to_slices()
        batch[self.key] = gp.Array(self.data[index], spec)
        return batch

f = np.load(sys.argv[1]); repeats = int(sys.argv[2]); out = {}
for name in json.loads(str(f["names"])):
    seg = f[name + "/seg"]; vs = gp.Coordinate(f[name + "/voxel_size"].tolist())
    sigma = tuple(f[name + "/sigma"].tolist()); offset = gp.Coordinate(f[name + "/offset"].tolist())
    S, D = gp.ArrayKey("S"), gp.ArrayKey("D")
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(seg.shape) * vs), voxel_size=vs)
    p = Source(S, seg, spec) + AddLocalShapeDescriptor(S, D, sigma=sigma)
    roi = gp.Roi(offset * vs, gp.Coordinate(f["out"].tolist()) * vs)
    req = gp.BatchRequest(); req[D] = gp.ArraySpec(roi=roi); req[S] = gp.ArraySpec(roi=roi)
    times = []
    with gp.build(p):
        for _ in range(repeats + 1):
            t = time.perf_counter(); b = p.request_batch(req); times.append(time.perf_counter() - t)
    np.save(sys.argv[1] + "." + str(len(out)) + ".npy", b[D].data)
    out[name] = times[1:]
print(json.dumps(out))
"""


def voronoi_labels(
    shape: tuple[int, ...], voxel_size: tuple[int, ...], n: int, seed: int
) -> np.ndarray:
    """A Voronoi partition (world-distance) of `shape` into about `n` segments, ids 1..n."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, dtype=np.uint32)
    pts = [rng.integers(0, s, n) for s in shape]
    seeds[tuple(pts)] = np.arange(1, n + 1, dtype=np.uint32)
    _, index = ndimage.distance_transform_edt(seeds == 0, sampling=voxel_size, return_indices=True)
    return seeds[tuple(index)].astype(np.uint32)


def make_case(cfg: dict, segments: int, seed: int) -> dict:
    vs, sigma = cfg["voxel_size"], cfg["sigma"]
    margin = tuple(int(3 * s / v) + 1 for s, v in zip(sigma, vs))
    shape = tuple(o + 2 * m for o, m in zip(OUT, margin))
    # about `segments` segments inside the output: scale the seed count by the volume ratio
    n = int(segments * np.prod(shape) / np.prod(OUT))
    seg = voronoi_labels(shape, vs, n, seed)
    return dict(seg=seg, voxel_size=np.array(vs), sigma=np.array(sigma), offset=np.array(margin))


def run_ours(case: dict, repeats: int) -> tuple[list[float], np.ndarray]:
    vs = gp.Coordinate(case["voxel_size"].tolist())
    S, D = gp.ArrayKey("LSD_BENCH_S"), gp.ArrayKey("LSD_BENCH_D")
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(case["seg"].shape) * vs), voxel_size=vs)
    p = gp.ArraySource(S, gp.Array(case["seg"], spec)) + AddLocalShapeDescriptor(
        S, D, sigma=tuple(case["sigma"].tolist())
    )
    roi = gp.Roi(gp.Coordinate(case["offset"].tolist()) * vs, gp.Coordinate(OUT) * vs)
    req = gp.BatchRequest()
    req[D] = gp.ArraySpec(roi=roi)
    times = []
    with gp.build(p) as pipeline:
        for _ in range(repeats + 1):
            t = time.perf_counter()
            batch = pipeline.request_batch(req)
            times.append(time.perf_counter() - t)
    return times[1:], batch[D].data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", help="python of a venv with gunpowder 1.x and lsds")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--segments", type=int, default=60)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args(argv)

    cases = {name: make_case(cfg, args.segments, args.seed) for name, cfg in CONFIGS.items()}
    rows = {}
    for name, case in cases.items():
        inside = case["seg"][tuple(slice(o, o + s) for o, s in zip(case["offset"], OUT))]
        times, data = run_ours(case, args.repeats)
        rows[name] = dict(
            ours_s=statistics.median(times), segments=len(np.unique(inside)), ours=data
        )
    if args.peer:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cases.npz"
            payload = {"names": json.dumps(list(cases)), "out": np.array(OUT)}
            for name, case in cases.items():
                payload.update({f"{name}/{k}": v for k, v in case.items()})
            np.savez(path, **payload)
            script = Path(tmp) / "peer.py"
            script.write_text(PEER_SCRIPT)
            res = subprocess.run(
                [args.peer, str(script), str(path), str(args.repeats)],
                check=True,
                capture_output=True,
                text=True,
            )
            peer = json.loads(res.stdout.strip().splitlines()[-1])
            for i, name in enumerate(cases):
                rows[name]["lsds_s"] = statistics.median(peer[name])
                theirs = np.load(f"{path}.{i}.npy")
                rows[name]["max_abs_diff"] = float(np.abs(theirs - rows[name]["ours"]).max())
    print(
        f"{'config':<32} {'segments':>8} {'ours s':>8} {'lsds s':>8} {'lsds/ours':>9} {'max diff':>9}"
    )
    for name, r in rows.items():
        lsds = r.get("lsds_s")
        ratio = "" if lsds is None else f"{lsds / r['ours_s']:.1f}"
        diff = "" if lsds is None else f"{r['max_abs_diff']:.1e}"
        lsds_txt = "" if lsds is None else f"{lsds:.3f}"
        print(
            f"{name:<32} {r['segments']:>8} {r['ours_s']:>8.3f} {lsds_txt:>8} {ratio:>9} {diff:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
