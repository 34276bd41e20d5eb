"""The fast paths of the isotropic workload (issue 14) against written-out definitions: the
tiled trilinear warp, the fused gaussian noise, the one-pass Normalize, zero padding without
writing the margins, the source box without section shifts, BLAS-free spline products."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes._pad import pad_constant
from gunpowder.nodes.normalize import Normalize
from gunpowder.spec import ArraySpec
from gunpowder.transforms import elastic_kernels as K
from gunpowder.transforms.augment_intensity import add_noise, value_range
from gunpowder.transforms.elastic import (
    _contract,
    build_transform,
    draw_jitter,
    random_rotation,
    rotation_2d,
)

seeds = st.integers(0, 2**32 - 1)


def trilinear_reference(src: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """The warp's definition, voxel by voxel: 0 more than half a voxel outside the source,
    else trilinear with indices clamped to the source (the border repeated)."""
    C, Z, Y, X = src.shape
    n = (Z, Y, X)
    out = np.zeros((C,) + coords.shape[1:], dtype=np.float64)
    for idx in np.ndindex(*coords.shape[1:]):
        p = coords[(slice(None),) + idx].astype(np.float64)
        if any(p[d] < -0.5 or p[d] > n[d] - 0.5 for d in range(3)):
            continue
        f = np.floor(p)
        t = p - f
        value = np.zeros(C)
        for corner in np.ndindex(2, 2, 2):
            i = [min(max(int(f[d]) + corner[d], 0), n[d] - 1) for d in range(3)]
            w = np.prod([t[d] if corner[d] else 1 - t[d] for d in range(3)])
            value += w * src[:, i[0], i[1], i[2]]
        out[(slice(None),) + idx] = value
    return out


@settings(max_examples=25, deadline=None)
@given(
    seeds,
    st.tuples(st.integers(1, 20), st.integers(1, 20), st.integers(1, 9)),
    st.sampled_from([0.5, 1.0, 1.3]),
    st.integers(1, 2),
    st.booleans(),
)
def test_tiled_warp_matches_trilinear_definition(seed, shape, zoom, channels, in_plane):
    """Rows inside the source (the unclamped paths), rows across its border and beyond it,
    over more rows than one tile (16 x 16), several channels; 3D rotations (tiled, rows
    across sections) and in-plane ones (rows within one section, in plain order)."""
    rng = np.random.default_rng(seed)
    if in_plane:
        affine = np.eye(3)
        affine[1:, 1:] = rotation_2d(rng.uniform(0, 2 * np.pi)) / zoom
        jitter = draw_jitter(rng, shape, (4, 4, 4), (0.0, 0.5, 0.5))
    else:
        affine = random_rotation(rng, 3) / zoom
        jitter = draw_jitter(rng, shape, (4, 4, 4), (0.5, 0.5, 0.5))
    t = build_transform((0, 0, 0), (1, 1, 1), shape, affine=affine, jitter=jitter, subsample=3)
    margin = int(rng.integers(-2, 4))  # a source smaller or larger than the sampled box
    begin, end = t.source_box((1, 1, 1), (0, 0, 0), shape, interpolate=True)
    begin = begin + margin
    end = np.maximum(end - margin, begin + 1)
    src = rng.random((channels,) + tuple(int(v) for v in end - begin)).astype(np.float32)
    out = t.warp(src, begin, (1, 1, 1), (0, 0, 0), shape, interpolate=True)
    coords = t.source_coordinates(begin, (1, 1, 1), (0, 0, 0), shape)
    np.testing.assert_allclose(out, trilinear_reference(src, coords), atol=2e-5)


def test_warp_row_with_nan_coordinates_reads_nothing_outside():
    """A NaN source coordinate takes the clamped path (never an unchecked index)."""
    src = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out = np.full((2, 1, 1, 6), 7.0, dtype=np.float32)
    pz = np.full(6, 1.2, np.float32)
    py = np.full(6, 1.5, np.float32)
    px = np.array([1.0, np.nan, 2.0, 3.0, 1.5, 0.5], np.float32)
    assert K._row_inside(pz, py, px, 3, 4, 5) is False
    half, zero = np.float32(-0.5), np.float32(0)
    K._warp_row(src, out, 0, 0, pz, py, px, 2.5, 3.5, 4.5, half, zero, 20)
    assert np.isfinite(out[:, 0, 0, [0, 2, 3, 4, 5]]).all()
    px[1] = 1.0
    assert K._row_inside(pz, py, px, 3, 4, 5) is True


def gaussian_reference(data, rng, var, mean, clip):
    """The numpy definition of gaussian noise (as before the fused kernel)."""
    low = -1.0 if data.size and float(data.min()) < 0 else 0.0
    noise = rng.standard_normal(data.shape, dtype=np.float32)
    out = data + (noise * np.sqrt(var) + mean).astype(data.dtype)
    if clip:
        np.clip(out, low, 1.0, out=out)
    return out


@settings(max_examples=30, deadline=None)
@given(
    seeds,
    st.sampled_from(["c", "transposed", "flipped", "signed", "float64", "2d", "4d"]),
    st.sampled_from([(0.01, 0.0), (0.04, 0.3), (0.0, -0.2)]),
    st.booleans(),
)
def test_fused_gaussian_noise_is_bit_identical_to_numpy(seed, layout, params, clip):
    rng = np.random.default_rng(seed)
    data = rng.random((5, 7, 6), dtype=np.float32)
    data = {
        "c": data,
        "transposed": data.transpose(2, 0, 1),
        "flipped": data[::-1, :, ::-2],
        "signed": data * 2 - 1,
        "float64": data.astype(np.float64).transpose(1, 2, 0),
        "2d": data[2],
        "4d": np.stack([data, data[::-1]]),
    }[layout]
    var, mean = params
    got = add_noise(data, "gaussian", np.random.default_rng(seed), clip, var=var, mean=mean)
    want = gaussian_reference(data, np.random.default_rng(seed), var, mean, clip)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@given(seeds, st.booleans())
def test_value_range_is_min_and_max(seed, with_nan):
    data = np.random.default_rng(seed).normal(size=(3, 4, 5)).astype(np.float32)[:, ::-1]
    if with_nan:
        data[1, 2, 3] = np.nan
        assert all(np.isnan(value_range(data)))
    else:
        assert value_range(data) == (float(data.min()), float(data.max()))
    assert value_range(np.zeros((0, 3), np.float32)) == (0.0, 0.0)


def test_normalize_one_pass_is_bit_identical():
    key = gp.ArrayKey("PERF_RAW")
    rng = np.random.default_rng(0)
    cases = [
        rng.integers(0, 256, (4, 5, 6), dtype=np.uint8),
        rng.integers(0, 65536, (4, 5, 6), dtype=np.uint16),
        rng.integers(-(2**31), 2**31 - 1, (4, 5, 6), dtype=np.int32),
        rng.integers(0, 256, (6, 5, 4), dtype=np.uint8).transpose(2, 1, 0),
        rng.random((4, 5, 6)),
    ]
    for data in cases:
        for dtype in (np.float32, np.float64, np.float16):
            for factor in (None, 0.5, 1 / 3):
                node = Normalize(key, factor=factor, dtype=dtype)
                node.upstream_spec = {key: ArraySpec(dtype=data.dtype)}
                f = factor
                if f is None:
                    integer = np.issubdtype(data.dtype, np.integer)
                    f = 1.0 / float(np.iinfo(data.dtype).max) if integer else 1.0
                with np.errstate(over="ignore", invalid="ignore"):  # int32 into float16
                    want = (data.astype(dtype) * f).astype(dtype, copy=False)
                    got = node.transform(data)
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)


@given(seeds, st.integers(1, 3))
def test_pad_zeros_equals_numpy_pad(seed, channels):
    rng = np.random.default_rng(seed)
    data = rng.random((channels, 4, 5, 3)).astype(np.float32)
    before = rng.integers(-3, 4, 3)  # negative: the wanted region starts inside the data
    after = rng.integers(-2, 4, 3)
    indices, inside, want_slices = [], [], []
    widths = [(0, 0)]
    for d, n in enumerate(data.shape[1:]):
        rel = np.arange(-before[d], n + after[d])
        indices.append(np.clip(rel, 0, n - 1))
        inside.append((rel >= 0) & (rel < n))
        widths.append((max(0, before[d]), max(0, after[d])))
        start = max(0, before[d]) - before[d]
        want_slices.append(slice(start, start + len(rel)))
    if any(len(i) == 0 for i in indices):
        return
    padded = np.pad(data, widths)[(slice(None),) + tuple(want_slices)]
    got = pad_constant(data, indices, inside, np.zeros((), data.dtype))
    np.testing.assert_array_equal(got, padded)
    assert not np.signbit(got).any()  # the margins are +0.0, as numpy.pad's


def test_pad_negative_zero_is_written_out():
    """-0.0 is not all-zero bytes: it takes the writing path, margins hold -0.0."""
    raw = gp.ArrayKey("PERF_PAD")
    data = np.ones((2, 2), np.float32)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (2, 2)), voxel_size=gp.Coordinate(1, 1))
    source = gp.ArraySource(raw, gp.Array(data, spec))
    pipeline = source + gp.Pad(raw, None, value=-0.0)
    request = gp.BatchRequest()
    request[raw] = gp.ArraySpec(roi=gp.Roi((-1, -1), (4, 4)))
    with gp.build(pipeline):
        out = pipeline.request_batch(request)[raw].data
    assert np.signbit(out[0, 0]) and out[1, 1] == 1.0


@settings(max_examples=25, deadline=None)
@given(seeds, st.tuples(st.integers(2, 12), st.integers(2, 14), st.integers(2, 14)))
def test_source_box_without_shifts_is_the_tight_box(seed, shape):
    """Without section shifts z is sampled at the nodes only; the box still holds every
    voxel the warp weights and no more than one voxel of slack per side."""
    rng = np.random.default_rng(seed)
    jitter = draw_jitter(rng, shape, (3, 4, 4), (0.5, 1.0, 1.0))
    affine = random_rotation(rng, 3) / rng.uniform(0.8, 1.25)
    t = build_transform((0, 0, 0), (1, 1, 1), shape, affine=affine, jitter=jitter, subsample=2)
    begin, end = t.source_box((1, 1, 1), (0, 0, 0), shape, interpolate=True)
    coords = t.source_coordinates((0, 0, 0), (1, 1, 1), (0, 0, 0), shape).reshape(3, -1)
    lo = np.floor(coords.min(axis=1) + 1e-3)
    hi = np.ceil(coords.max(axis=1) - 1e-3) + 1
    assert (begin <= lo).all() and (end >= hi).all()
    assert (begin >= lo - 1).all() and (end <= hi + 1).all()


@given(seeds, st.integers(0, 2))
def test_contract_is_the_matrix_product_along_an_axis(seed, axis):
    rng = np.random.default_rng(seed)
    values = rng.random((3, 4, 5))
    matrix = rng.random((6, values.shape[axis]))
    want = np.moveaxis(np.tensordot(matrix, values, axes=([1], [axis])), 0, axis)
    np.testing.assert_allclose(_contract(matrix, values, axis), want, rtol=1e-12)
