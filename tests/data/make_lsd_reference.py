"""Make tests/data/lsd_reference.npz: run lsds' AddLocalShapeDescriptor (gunpowder 1.x) on blocky
random labels. Run in a separate venv: `/tmp/gp15/bin/python tests/data/make_lsd_reference.py
tests/data/lsd_reference.npz` (gunpowder==1.4.*, lsds); add `big` for 56^3 cases (not stored)."""

import sys

import numpy as np
from lsd.train.gp import AddLocalShapeDescriptor

import gunpowder as gp


class Src(gp.BatchProvider):
    def __init__(self, key, data, spec):
        self.key, self.data, self.spec_ = key, data, spec

    def setup(self):
        self.provides(self.key, self.spec_.copy())

    def provide(self, request):
        b = gp.Batch()
        spec = self.spec_.copy()
        roi = request[self.key].roi
        spec.roi = roi
        sl = ((roi - self.spec_.roi.offset) / spec.voxel_size).to_slices()
        b[self.key] = gp.Array(self.data[sl], spec)
        return b


def blocky(rng, shape, block, n, noise):
    g = [-(-s // b) for s, b in zip(shape, block)]
    seg = np.kron(rng.integers(1, n + 1, g), np.ones(block, int))[tuple(slice(0, s) for s in shape)]
    seg[rng.random(shape) < noise] = 0
    seg[rng.random(shape) < noise] = n + 1
    return seg.astype(np.uint16)


def run(
    name,
    seg,
    vs,
    sigma,
    offset,
    size,
    ds=1,
    mode="gaussian",
    components=None,
    masks=False,
    rng=None,
):
    S, D, M, LM, U = (gp.ArrayKey(k) for k in ("S", "D", "M", "LM", "U"))
    vs = gp.Coordinate(vs)
    spec = gp.ArraySpec(roi=gp.Roi((0,) * len(vs), gp.Coordinate(seg.shape) * vs), voxel_size=vs)
    srcs = [Src(S, seg, spec.copy())]
    lm = un = None
    if masks:
        lm = (rng.random(seg.shape) < 0.9).astype(np.uint8)
        un = (rng.random(seg.shape) < 0.9).astype(np.uint8)
        srcs += [Src(LM, lm, spec.copy()), Src(U, un, spec.copy())]
    p = (
        tuple(srcs)
        + gp.MergeProvider()
        + AddLocalShapeDescriptor(
            S,
            D,
            lsds_mask=M if masks else None,
            labels_mask=LM if masks else None,
            unlabelled=U if masks else None,
            sigma=sigma,
            mode=mode,
            components=components,
            downsample=ds,
        )
    )
    roi = gp.Roi(gp.Coordinate(offset) * vs, gp.Coordinate(size) * vs)
    req = gp.BatchRequest()
    req[D] = gp.ArraySpec(roi=roi)
    req[S] = gp.ArraySpec(roi=roi)
    if masks:
        req[M] = gp.ArraySpec(roi=roi)
    with gp.build(p):
        b = p.request_batch(req)
    out = {
        f"{name}/seg": seg,
        f"{name}/voxel_size": np.array(vs),
        f"{name}/sigma": np.array(sigma, float),
        f"{name}/offset": np.array(offset),
        f"{name}/size": np.array(size),
        f"{name}/downsample": np.array(ds),
        f"{name}/mode": np.array(mode),
        f"{name}/components": np.array("" if components is None else components),
        f"{name}/lsd": b[D].data,
    }
    if masks:
        out.update(
            {f"{name}/labels_mask": lm, f"{name}/unlabelled": un, f"{name}/lsds_mask": b[M].data}
        )
    return out


big = len(sys.argv) > 2 and sys.argv[2] == "big"
rng = np.random.default_rng(15)
res = {}
if not big:
    res |= run(
        "iso",
        blocky(rng, (28, 28, 28), (5, 4, 6), 6, 0.03),
        (1, 1, 1),
        3.0,
        (9, 9, 9),
        (10, 10, 10),
    )
    res |= run(
        "aniso",
        blocky(rng, (20, 40, 40), (2, 9, 7), 6, 0.03),
        (40, 4, 4),
        (80.0, 16.0, 16.0),
        (7, 14, 14),
        (6, 12, 12),
    )
    res |= run(
        "ds2",
        blocky(rng, (24, 24, 24), (4, 6, 4), 5, 0.0),
        (1, 1, 1),
        2.0,
        (8, 8, 8),
        (8, 8, 8),
        ds=2,
    )
    res |= run(
        "sphere",
        blocky(rng, (16, 16, 16), (4, 5, 3), 5, 0.03),
        (1, 1, 1),
        3.0,
        (4, 4, 4),
        (8, 8, 8),
        mode="sphere",
    )
    res |= run(
        "masks",
        blocky(rng, (20, 20, 20), (4, 5, 3), 5, 0.03),
        (1, 1, 1),
        2.0,
        (6, 6, 6),
        (8, 8, 8),
        components="0129",
        masks=True,
        rng=rng,
    )
else:
    # realistic: 56^3 output, ~100 segments
    res |= run(
        "big_iso",
        blocky(rng, (86, 86, 86), (12, 12, 12), 150, 0.0),
        (8, 8, 8),
        40.0,
        (15, 15, 15),
        (56, 56, 56),
    )
    res |= run(
        "big_aniso",
        blocky(rng, (68, 116, 116), (6, 20, 20), 150, 0.0),
        (40, 4, 4),
        (80.0, 40.0, 40.0),
        (6, 30, 30),
        (56, 56, 56),
    )
np.savez_compressed(sys.argv[1], **res)
print("saved", sys.argv[1], {k: v.shape for k, v in res.items() if k.endswith("/lsd")})
