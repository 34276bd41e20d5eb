"""Local shape descriptors: the kernel against a written-out per-voxel definition, its
properties, the node's context, and parity with lsds (stored reference; live if installed)."""

from __future__ import annotations

import itertools
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes.add_local_shape_descriptor import AddLocalShapeDescriptor
from gunpowder.transforms.local_shape_descriptor import (
    local_shape_descriptor,
    num_channels,
    parse_components,
    window_radius,
)

REFERENCE = Path(__file__).parent / "data" / "lsd_reference.npz"

# ------------------------------------------------------------------------------------------
# the definition, written out voxel by voxel


def _gauss_1d(sigma_vox: float, truncate: float) -> dict[int, float]:
    r = int(truncate * sigma_vox + 0.5)
    w = {k: float(np.exp(-0.5 * k * k / sigma_vox**2)) for k in range(-r, r + 1)}
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}


def _sphere_window(s: float, compatible: bool) -> dict[tuple[int, ...], float]:
    """lsds: ball on arange(-s, s), applied by convolution (displacement c - j)."""
    out = {}
    if compatible:
        k = np.arange(-s, s)
        c = len(k) // 2
        for js in itertools.product(range(len(k)), repeat=3):
            if sum(k[j] ** 2 for j in js) <= s * s + 1e-12:
                out[tuple(c - j for j in js)] = 1.0
    else:
        r = int(np.floor(s))
        for d in itertools.product(range(-r, r + 1), repeat=3):
            if sum(x * x for x in d) <= s * s + 1e-12:
                out[d] = 1.0
    return out


def brute_force(seg, sigma, vs, mode="gaussian", truncate=3.0, compatible=True):
    """Per voxel: sums over the window restricted to the voxel's segment, then lsds'
    normalisation (offset/sigma*0.5+0.5, max(var,1e-3)/sigma^2, corr*0.5+0.5, mass)."""
    dims = seg.ndim
    sigma = np.broadcast_to(np.asarray(sigma, float), (dims,))
    vs = np.asarray(vs, float)
    if mode == "gaussian":
        axes = [_gauss_1d(s / v, truncate) for s, v in zip(sigma, vs)]
        window = {
            d: float(np.prod([axes[i][d[i]] for i in range(dims)]))
            for d in itertools.product(*[sorted(a) for a in axes])
        }
    else:
        window = _sphere_window(sigma[0] / vs[0], compatible)
    pairs = [(i, j) for i in range(dims) for j in range(i + 1, dims)]
    out = np.zeros((num_channels(dims),) + seg.shape)
    for p in itertools.product(*[range(n) for n in seg.shape]):
        if seg[p] == 0:
            continue
        mass, s1, s2 = 0.0, np.zeros(dims), np.zeros((dims, dims))
        for d, w in window.items():
            q = tuple(a + b for a, b in zip(p, d))
            if all(0 <= x < n for x, n in zip(q, seg.shape)) and seg[q] == seg[p]:
                x = np.array(d) * vs
                mass += w
                s1 += w * x
                s2 += w * np.outer(x, x)
        mean = s1 / mass
        cov = s2 / mass - np.outer(mean, mean)
        var = np.maximum(np.diag(cov), 1e-3)
        scale = 1.0 if (mode == "sphere" and compatible) else 0.5
        size = mass
        if mode == "sphere" and not compatible:
            size = mass / len(window)
        values = (
            list(mean / sigma * scale + 0.5)
            + list(var / sigma**2)
            + [cov[i, j] / np.sqrt(var[i] * var[j]) * 0.5 + 0.5 for i, j in pairs]
            + [size]
        )
        out[(slice(None),) + p] = np.clip(values, 0, 1)
    return out


labels_3d = hnp.arrays(np.uint8, st.tuples(*[st.integers(3, 5)] * 3), elements=st.integers(0, 3))
labels_2d = hnp.arrays(np.uint8, st.tuples(*[st.integers(3, 9)] * 2), elements=st.integers(0, 3))


@settings(max_examples=20)
@given(
    seg=labels_3d,
    sigma=st.sampled_from([1.0, 1.5, 2.0]),
    vs=st.sampled_from([(1, 1, 1), (2, 1, 1)]),
)
def test_kernel_matches_brute_force_3d(seg, sigma, vs):
    sig = tuple(sigma * v for v in (1, 1, 1))
    got = local_shape_descriptor(seg, sig, vs)
    np.testing.assert_allclose(got, brute_force(seg, sig, vs), atol=2e-5)


@given(seg=labels_2d, sigma=st.sampled_from([1.0, 2.5]), truncate=st.sampled_from([3.0, 4.0]))
def test_kernel_matches_brute_force_2d(seg, sigma, truncate):
    got = local_shape_descriptor(seg, sigma, (1, 1), truncate=truncate)
    assert got.shape == (6,) + seg.shape
    np.testing.assert_allclose(got, brute_force(seg, sigma, (1, 1), truncate=truncate), atol=2e-5)


@pytest.mark.parametrize("compatible", [True, False])
@pytest.mark.parametrize("sigma", [2.0, 2.5])
def test_sphere_matches_brute_force(compatible, sigma):
    seg = np.random.default_rng(3).integers(0, 3, (6, 5, 7)).astype(np.uint8)
    got = local_shape_descriptor(seg, sigma, mode="sphere", lsds_compatible=compatible)
    want = brute_force(seg, sigma, (1, 1, 1), mode="sphere", compatible=compatible)
    np.testing.assert_allclose(got, want, atol=2e-5)


# ------------------------------------------------------------------------------------------
# properties


@given(seg=labels_3d, shift=st.tuples(*[st.integers(0, 4)] * 3))
def test_translation_invariance(seg, shift):
    big = np.zeros(tuple(n + 12 for n in seg.shape), np.uint8)
    a = tuple(slice(4, 4 + n) for n in seg.shape)
    b = tuple(slice(s, s + n) for s, n in zip(shift, seg.shape))
    big_a, big_b = big.copy(), big.copy()
    big_a[a], big_b[b] = seg, seg
    da = local_shape_descriptor(big_a, 1.5)[(slice(None),) + a]
    db = local_shape_descriptor(big_b, 1.5)[(slice(None),) + b]
    np.testing.assert_allclose(da, db, atol=1e-6)


def test_ball_is_symmetric():
    z, y, x = np.mgrid[-8:9, -8:9, -8:9]
    seg = ((z**2 + y**2 + x**2) <= 36).astype(np.uint8)
    d = local_shape_descriptor(seg, 3.0)
    centre = (slice(None), 8, 8, 8)
    np.testing.assert_allclose(d[:3][centre], 0.5, atol=1e-6)  # no offset at the centre
    np.testing.assert_allclose(d[6:9][centre], 0.5, atol=1e-6)  # no correlation
    np.testing.assert_allclose(d[3:6][centre], d[3][8, 8, 8], atol=1e-6)  # equal variances
    inside = seg > 0
    for axis in range(3):
        flipped = np.flip(d, axis=axis + 1)
        # mirroring an axis mirrors its offset and correlations, keeps variances and size
        np.testing.assert_allclose(flipped[axis][inside], 1 - d[axis][inside], atol=1e-5)
        for c in (3, 4, 5, 9):
            np.testing.assert_allclose(flipped[c], d[c], atol=1e-5)
    # transposing z and y swaps their channels
    t = np.transpose(d, (0, 2, 1, 3))
    np.testing.assert_allclose(t[1], d[0], atol=1e-5)
    np.testing.assert_allclose(t[4], d[3], atol=1e-5)


def test_single_label_volume():
    seg = np.ones((25, 25, 25), np.uint8)
    d = local_shape_descriptor(seg, 2.0)
    k = np.arange(-6, 7)
    g = np.exp(-(k**2) / 8.0)
    var = (g * k**2).sum() / g.sum() / 4.0  # the 3-sigma truncated kernel's variance / sigma^2
    c = (slice(None), 12, 12, 12)
    np.testing.assert_allclose(d[c], [0.5] * 3 + [var] * 3 + [0.5] * 3 + [1.0], atol=1e-6)
    assert abs(var - 0.98781565) < 1e-6
    # at a corner the window is a quadrant: mass (sum of half a kernel)^3, offsets inwards
    half = g[6:].sum() / g.sum()
    np.testing.assert_allclose(d[9, 0, 0, 0], half**3, atol=1e-6)
    assert (d[:3, 0, 0, 0] > 0.5).all()
    # a longer truncation approaches the untruncated Gaussian's variance sigma^2
    d5 = local_shape_descriptor(seg, 2.0, truncate=5.0)
    assert abs(d5[3, 12, 12, 12] - 1.0) < 1e-4


@given(
    seg=labels_3d,
    sigma=st.floats(0.5, 4.0),
    mode=st.sampled_from(["gaussian", "sphere"]),
    downsample=st.sampled_from([1, 2]),
    components=st.sampled_from([None, "0129", "345", "9"]),
)
def test_shapes_dtypes_range_and_determinism(seg, sigma, mode, downsample, components):
    d = local_shape_descriptor(seg, sigma, components=components, downsample=downsample, mode=mode)
    n = len(parse_components(components, 3))
    assert d.shape == (n,) + seg.shape and d.dtype == np.float32
    assert np.isfinite(d).all() and d.min() >= 0 and d.max() <= 1
    assert (d[:, seg == 0] == 0).all()
    again = local_shape_descriptor(
        seg, sigma, components=components, downsample=downsample, mode=mode
    )
    np.testing.assert_array_equal(d, again)
    full = local_shape_descriptor(seg, sigma, downsample=downsample, mode=mode)
    np.testing.assert_array_equal(d, full[parse_components(components, 3)])


def test_downsample_takes_the_sample_at_or_before():
    seg = np.kron(np.random.default_rng(0).integers(1, 4, (4, 4, 4)), np.ones((2, 2, 2), int))
    d2 = local_shape_descriptor(seg, 2.0, downsample=2)
    coarse = local_shape_descriptor(seg[::2, ::2, ::2], 2.0, voxel_size=(2, 2, 2))
    up = coarse.repeat(2, 1).repeat(2, 2).repeat(2, 3)
    np.testing.assert_allclose(d2, up, atol=1e-6)


def test_bad_arguments():
    seg = np.ones((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="components"):
        local_shape_descriptor(seg, 1.0, components="93")
    with pytest.raises(ValueError, match="mode"):
        local_shape_descriptor(seg, 1.0, mode="cube")
    with pytest.raises(ValueError, match="2D or 3D"):
        local_shape_descriptor(np.ones(4, np.uint8), 1.0)
    with pytest.raises(ValueError, match="mode"):
        AddLocalShapeDescriptor(gp.ArrayKey("A"), gp.ArrayKey("B"), mode="cube")


# ------------------------------------------------------------------------------------------
# the node


def _pipeline(seg, vs, **kwargs):
    S, D, M = gp.ArrayKey("LSD_T_S"), gp.ArrayKey("LSD_T_D"), gp.ArrayKey("LSD_T_M")
    spec = gp.ArraySpec(roi=gp.Roi((0,) * seg.ndim, gp.Coordinate(seg.shape) * vs), voxel_size=vs)
    p = gp.ArraySource(S, gp.Array(seg, spec)) + AddLocalShapeDescriptor(
        S, D, lsds_mask=M, **kwargs
    )
    return p, S, D, M


def _request(p, D, roi, M=None):
    req = gp.BatchRequest()
    req[D] = gp.ArraySpec(roi=roi)
    if M is not None:
        req[M] = gp.ArraySpec(roi=roi)
    with gp.build(p) as pipeline:
        return pipeline.request_batch(req)


@pytest.mark.parametrize(
    "vs,kwargs",
    [
        ((1, 1, 1), dict(sigma=2.0)),
        ((40, 4, 4), dict(sigma=(60.0, 5.0, 10.0))),  # lsds' 3-sigma context is short here
        ((1, 1, 1), dict(sigma=2.0, downsample=2)),
        ((1, 1, 1), dict(sigma=2.0, mode="sphere")),
        ((2, 2), dict(sigma=3.0, components="015")),
    ],
)
def test_node_crop_equals_crop_of_larger_request(vs, kwargs):
    rng = np.random.default_rng(1)
    shape = (30,) * len(vs)
    seg = np.kron(rng.integers(0, 5, tuple(s // 3 for s in shape)), np.ones((3,) * len(vs), int))
    vs = gp.Coordinate(vs)
    p, S, D, M = _pipeline(seg.astype(np.uint16), vs, **kwargs)
    big = gp.Roi(gp.Coordinate((8,) * len(vs)) * vs, gp.Coordinate((14,) * len(vs)) * vs)
    small = gp.Roi(gp.Coordinate((11,) * len(vs)) * vs, gp.Coordinate((5,) * len(vs)) * vs)
    whole = gp.Roi((0,) * len(vs), gp.Coordinate(shape) * vs)
    b_big, b_small = _request(p, D, big, M), _request(p, D, small)
    assert b_big[D].data.dtype == np.float32 and b_big[D].spec.roi == big
    np.testing.assert_array_equal(b_big[D].crop(small).data, b_small[D].data)
    # and both equal the kernel on the whole volume (the batch border is not a boundary)
    full = local_shape_descriptor(
        seg,
        kwargs["sigma"],
        tuple(vs),
        kwargs.get("components"),
        kwargs.get("downsample", 1),
        kwargs.get("mode", "gaussian"),
    )
    index = ((small - whole.offset) / vs).to_slices()
    np.testing.assert_allclose(b_small[D].data, full[(slice(None),) + index], atol=1e-6)
    mask = b_big[M].data
    assert mask.dtype == np.float32 and mask.shape == b_big[D].data.shape
    np.testing.assert_array_equal(mask[0], b_big[S].data != 0 if S in b_big else mask[0])


def test_node_asks_for_the_window_reach():
    vs = gp.Coordinate(40, 4, 4)
    before, after = window_radius((60.0, 5.0, 10.0), vs)
    assert before == after == (5, 4, 8)  # int(3 * sigma / voxel + 0.5); lsds asks (4, 3, 7)
    seen = []

    def spy(request):
        seen.append(request)
        return request

    S, D = gp.ArrayKey("LSD_T_S"), gp.ArrayKey("LSD_T_D")
    seg = np.ones((40, 40, 40), np.uint8)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(seg.shape) * vs), voxel_size=vs)
    p = (
        gp.ArraySource(S, gp.Array(seg, spec))
        + gp.FunctionNode(prepare=lambda r, rng: (spy(r.copy()), None))
        + AddLocalShapeDescriptor(S, D, sigma=(60.0, 5.0, 10.0))
    )
    roi = gp.Roi(gp.Coordinate(10, 10, 10) * vs, gp.Coordinate(5, 5, 5) * vs)
    _request(p, D, roi)
    assert seen[0][S].roi == roi.grow(gp.Coordinate(5, 4, 8) * vs, gp.Coordinate(5, 4, 8) * vs)
    assert D not in seen[0]


# ------------------------------------------------------------------------------------------
# parity with lsds


def _reference_cases():
    if not REFERENCE.exists():
        return []
    with np.load(REFERENCE) as f:
        return sorted({k.split("/")[0] for k in f.files})


def _run_reference(name, make_node):
    with np.load(REFERENCE) as f:
        g = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(name + "/")}
    vs = gp.Coordinate(g["voxel_size"].tolist())
    keys = {k: gp.ArrayKey(f"LSD_REF_{k}") for k in ("S", "D", "M", "LM", "U")}
    spec = gp.ArraySpec(
        roi=gp.Roi((0,) * len(vs), gp.Coordinate(g["seg"].shape) * vs), voxel_size=vs
    )
    masks = "lsds_mask" in g
    sources = [gp.ArraySource(keys["S"], gp.Array(g["seg"], spec.copy()))]
    if masks:
        sources.append(gp.ArraySource(keys["LM"], gp.Array(g["labels_mask"], spec.copy())))
        sources.append(gp.ArraySource(keys["U"], gp.Array(g["unlabelled"], spec.copy())))
    kwargs = dict(
        lsds_mask=keys["M"] if masks else None,
        labels_mask=keys["LM"] if masks else None,
        unlabelled=keys["U"] if masks else None,
        sigma=g["sigma"].tolist(),
        mode=str(g["mode"]),
        components=str(g["components"]) or None,
        downsample=int(g["downsample"]),
    )
    node = make_node(keys["S"], keys["D"], **kwargs)
    p = (tuple(sources) + gp.MergeProvider() if masks else sources[0]) + node
    roi = gp.Roi(gp.Coordinate(g["offset"].tolist()) * vs, gp.Coordinate(g["size"].tolist()) * vs)
    req = gp.BatchRequest()
    req[keys["D"]] = gp.ArraySpec(roi=roi)
    req[keys["S"]] = gp.ArraySpec(roi=roi)  # lsds' node fails without it
    if masks:
        req[keys["M"]] = gp.ArraySpec(roi=roi)
    with gp.build(p) as pipeline:
        batch = pipeline.request_batch(req)
    return g, batch, keys


@pytest.mark.skipif(not REFERENCE.exists(), reason=f"no reference file {REFERENCE}")
@pytest.mark.parametrize("name", _reference_cases())
def test_parity_with_stored_lsds_reference(name):
    """tests/data/lsd_reference.npz: lsds 0.1.3 on gunpowder 1.4.4 (iso, 40x4x4 nm,
    downsample 2, sphere, masks + components), made by a script in a separate venv."""
    g, batch, keys = _run_reference(name, AddLocalShapeDescriptor)
    got = batch[keys["D"]].data
    assert got.shape == g["lsd"].shape and got.dtype == np.float32
    assert np.abs(got - g["lsd"]).max() < 1e-4
    if "lsds_mask" in g:
        np.testing.assert_array_equal(batch[keys["M"]].data, g["lsds_mask"])


@pytest.mark.parametrize("name", _reference_cases())
def test_parity_with_live_lsds(name):
    """lsds' own node, run through gunpowder.compat in our pipelines, on the same cases."""
    lsd_gp = pytest.importorskip("lsd.train.gp", reason="lsds is not installed in this venv")
    try:
        g, batch, keys = _run_reference(name, lsd_gp.AddLocalShapeDescriptor)
    except gp.PipelineRequestError as e:
        if "requested with dtype" not in str(e):
            raise
        # lsds asks for `unlabelled` with the descriptor's dtype (float32); gunpowder 1.x did
        # not check request dtypes, this engine does
        pytest.xfail(f"gunpowder.compat rejects lsds' request: {e}")
    theirs = batch[keys["D"]].data
    ours = _run_reference(name, AddLocalShapeDescriptor)[1][keys["D"]].data
    assert np.abs(theirs - ours).max() < 1e-4
