"""Property tests of the elastic transform kernels (gunpowder.transforms.elastic)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.transforms.elastic import (
    build_transform,
    draw_jitter,
    draw_misalignment,
    random_rotation,
    rotation_2d,
)

shapes3 = st.tuples(st.integers(1, 9), st.integers(1, 14), st.integers(1, 14))
voxel_sizes = st.sampled_from([(1, 1, 1), (40, 4, 4), (8, 8, 8), (3, 5, 7)])
seeds = st.integers(0, 2**32 - 1)


def random_transform(
    seed, shape, voxel_size, origin=(0, 0, 0), misalign=True, subsample=3, sigma=2.0
):
    """A transform with everything switched on: jitter, rotation, scale, section shifts."""
    rng = np.random.default_rng(seed)
    jitter = draw_jitter(rng, shape, (2, 5, 5), (sigma / 4, sigma, sigma))
    affine = random_rotation(rng, 3) / rng.uniform(0.8, 1.25)
    shifts = draw_misalignment(rng, shape[0], 0.2, 0.2, 3) if misalign else None
    return build_transform(
        origin,
        voxel_size,
        shape,
        affine=affine,
        jitter=jitter,
        section_shifts=shifts,
        subsample=subsample,
    )


@given(shapes3, voxel_sizes, st.integers(1, 9), seeds)
def test_identity_is_exact(shape, voxel_size, subsample, seed):
    rng = np.random.default_rng(seed)
    origin = tuple(int(v) * int(o) for v, o in zip(voxel_size, rng.integers(-5, 5, 3)))
    zero = np.zeros((3,) + tuple(max(1, s // 3) for s in shape))
    t = build_transform(
        origin, voxel_size, shape, affine=np.eye(3), jitter=zero, subsample=subsample
    )
    raw = rng.random((2,) + shape).astype(np.float32)
    labels = rng.integers(0, 2**40, shape).astype(np.uint64)
    warped = t.warp(raw, origin, voxel_size, origin, shape, interpolate=True)
    assert warped.dtype == raw.dtype and warped.shape == raw.shape
    np.testing.assert_allclose(warped, raw, atol=1e-5)
    np.testing.assert_array_equal(t.warp(labels, origin, voxel_size, origin, shape, False), labels)
    begin, end = t.source_box(voxel_size, origin, shape, interpolate=True)
    assert tuple(begin) == origin and tuple(end - begin) == tuple(np.multiply(shape, voxel_size))


@given(shapes3, voxel_sizes, seeds)
def test_warped_labels_only_contain_source_labels(shape, voxel_size, seed):
    t = random_transform(seed, shape, voxel_size)
    begin, end = t.source_box(voxel_size, (0, 0, 0), shape, interpolate=False)
    source_shape = tuple((end - begin) // voxel_size)
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array([3, 17, 2**33], dtype=np.uint64), size=source_shape)
    warped = t.warp(labels, begin, voxel_size, (0, 0, 0), shape, interpolate=False)
    assert warped.dtype == np.uint64 and warped.shape == shape
    assert set(np.unique(warped)) <= {3, 17, 2**33}


@given(shapes3, voxel_sizes, seeds, st.booleans(), st.integers(1, 8))
def test_source_box_contains_every_source_coordinate(shape, voxel_size, seed, interpolate, sub):
    rng = np.random.default_rng(seed)
    offset = tuple(int(v) * int(o) for v, o in zip(voxel_size, rng.integers(-3, 3, 3)))
    t = random_transform(seed, tuple(s + 4 for s in shape), voxel_size, subsample=sub)
    begin, end = t.source_box(voxel_size, offset, shape, interpolate)
    assert all(b % v == 0 and e % v == 0 for b, e, v in zip(begin, end, voxel_size))
    size = (end - begin) // voxel_size
    coords = t.source_coordinates(begin, voxel_size, offset, shape).reshape(3, -1)
    for d in range(3):
        if interpolate:  # every voxel with a non-zero weight is inside the box
            lo, hi = np.floor(coords[d] + 1e-3), np.ceil(coords[d] - 1e-3)
        else:
            lo = hi = np.floor(coords[d] + 0.5)
        assert lo.min() >= 0 and hi.max() <= size[d] - 1


@given(st.integers(1, 6), st.integers(1, 13), voxel_sizes, st.integers(1, 5), seeds)
def test_rotation_by_90_degrees_is_rot90(nz, n, voxel_size, subsample, seed):
    """Source = centre + R (target - centre), R = [[cos, -sin], [sin, cos]] on (y, x)."""
    voxel_size = (voxel_size[0], voxel_size[1], voxel_size[1])
    shape = (nz, n, n)
    affine = np.eye(3)
    affine[1:, 1:] = rotation_2d(np.pi / 2)
    t = build_transform((0, 0, 0), voxel_size, shape, affine=affine, subsample=subsample)
    rng = np.random.default_rng(seed)
    raw = rng.random(shape).astype(np.float32)
    labels = rng.integers(0, 100, shape).astype(np.int32)
    expected = np.rot90(labels, k=-1, axes=(1, 2))
    np.testing.assert_array_equal(
        t.warp(labels, (0, 0, 0), voxel_size, (0, 0, 0), shape, False), expected
    )
    warped = t.warp(raw, (0, 0, 0), voxel_size, (0, 0, 0), shape, True)
    np.testing.assert_allclose(warped, np.rot90(raw, k=-1, axes=(1, 2)), atol=1e-4)


@given(shapes3, seeds, st.sampled_from([np.uint8, np.int16, np.float64, np.float32]))
def test_interpolation_of_a_linear_ramp_is_exact_for_any_voxel_size(shape, seed, dtype):
    """Linear interpolation reproduces a ramp: every array sees the same world transform."""
    rng = np.random.default_rng(seed)
    t = random_transform(seed, (20, 40, 40), (4, 4, 4), misalign=False)
    slope = rng.uniform(-0.2, 0.2, 3) if dtype != np.uint8 else np.array([0.05, 0.05, 0.05])
    for voxel_size in [(4, 4, 4), (8, 4, 12), (4, 8, 8)]:
        vs = np.array(voxel_size)
        offset = np.array((8, 40, 40)) // vs * vs
        begin, end = t.source_box(vs, offset, shape, interpolate=True)
        grid = np.stack(
            np.meshgrid(
                *[
                    begin[d] + (np.arange((end - begin)[d] // vs[d]) + 0.5) * vs[d]
                    for d in range(3)
                ],
                indexing="ij",
            )
        )
        ramp = np.tensordot(slope, grid, axes=1) + 100
        source = np.rint(ramp) if np.issubdtype(dtype, np.integer) else ramp
        warped = t.warp(source.astype(dtype), begin, vs, offset, shape, interpolate=True)
        centres = np.stack(
            np.meshgrid(
                *[offset[d] + (np.arange(shape[d]) + 0.5) * vs[d] for d in range(3)], indexing="ij"
            )
        )
        mapped = t.to_source(centres.reshape(3, -1).T).T.reshape(centres.shape)
        expected = np.tensordot(slope, mapped, axes=1) + 100
        # integer arrays: the source ramp and the result are both rounded
        tolerance = 1.01 if np.issubdtype(dtype, np.integer) else 1e-2
        np.testing.assert_allclose(warped.astype(np.float64), expected, atol=tolerance)


@given(seeds, st.sampled_from([(1, 1, 1), (40, 4, 4)]))
def test_to_target_inverts_to_source(seed, voxel_size):
    """`to_target` finds a preimage; without jitter (no folds) it is the original point."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0.3, 0.7, (20, 3)) * np.multiply((8, 30, 30), voxel_size)
    t = random_transform(seed, (8, 30, 30), voxel_size, misalign=False, sigma=0.5)
    source = t.to_source(points)
    np.testing.assert_allclose(
        t.to_source(t.to_target(source)), source, atol=1e-3 * max(voxel_size)
    )
    affine = random_transform(seed, (8, 30, 30), voxel_size, misalign=False, sigma=0.0)
    np.testing.assert_allclose(
        affine.to_target(affine.to_source(points)), points, atol=1e-3 * max(voxel_size)
    )


@given(seeds)
def test_section_shifts_translate_whole_sections(seed):
    rng = np.random.default_rng(seed)
    shape = (6, 10, 10)
    shifts = draw_misalignment(rng, shape[0], 0.3, 0.3, 2)
    t = build_transform((0, 0, 0), (1, 1, 1), shape, section_shifts=shifts)
    pad = int(np.abs(shifts).max())  # shifts accumulate over sections
    labels = rng.integers(0, 1000, (6, 10 + 2 * pad, 10 + 2 * pad))
    warped = t.warp(labels, (0, -pad, -pad), (1, 1, 1), (0, 0, 0), shape, False)
    for z in range(shape[0]):
        dy, dx = shifts[z].astype(int) + pad
        np.testing.assert_array_equal(warped[z], labels[z, dy : dy + 10, dx : dx + 10])


@given(st.integers(2, 8), st.integers(2, 12), seeds)
def test_two_dimensional_transforms(ny, nx, seed):
    rng = np.random.default_rng(seed)
    shape = (ny, nx)
    jitter = draw_jitter(rng, shape, (3, 3), (1.0, 1.0))
    t = build_transform((0, 0), (2, 2), shape, affine=rotation_2d(0.3), jitter=jitter, subsample=2)
    begin, end = t.source_box((2, 2), (0, 0), shape, interpolate=False)
    labels = rng.integers(0, 4, (3,) + tuple((end - begin) // 2))
    warped = t.warp(labels, begin, (2, 2), (0, 0), shape, False)
    assert warped.shape == (3,) + shape
    assert set(np.unique(warped)) <= set(np.unique(labels))
    mild = build_transform((0, 0), (2, 2), shape, affine=rotation_2d(0.3), jitter=jitter * 0.2)
    points = np.array([[ny, nx]], dtype=float)
    np.testing.assert_allclose(mild.to_target(mild.to_source(points)), points, atol=1e-2)


def test_spatial_dims_two_keeps_sections_apart():
    rng = np.random.default_rng(0)
    shape = (5, 16, 16)
    jitter = draw_jitter(rng, shape[1:], (4, 4), (1.0, 1.0))
    t = build_transform(
        (0, 0, 0), (40, 4, 4), shape, affine=rotation_2d(0.5), jitter=jitter, spatial_dims=2
    )
    begin, end = t.source_box((40, 4, 4), (0, 0, 0), shape, interpolate=False)
    assert begin[0] == 0 and end[0] == 5 * 40
    size = tuple((end - begin) // (40, 4, 4))
    labels = (np.arange(5)[:, None, None] * 100 + rng.integers(0, 5, size)).astype(np.uint32)
    warped = t.warp(labels, begin, (40, 4, 4), (0, 0, 0), shape, False)
    for z in range(5):
        assert set(np.unique(warped[z])) <= set(np.unique(labels[z]))
    raw = np.arange(5, dtype=np.float32)[:, None, None] * np.ones(size, np.float32)
    np.testing.assert_allclose(
        t.warp(raw, begin, (40, 4, 4), (0, 0, 0), shape, True), raw[:, :16, :16]
    )


@settings(max_examples=10)
@given(seeds)
def test_deterministic_given_the_draws(seed):
    a = random_transform(seed, (6, 12, 12), (40, 4, 4))
    b = random_transform(seed, (6, 12, 12), (40, 4, 4))
    raw = np.random.default_rng(seed).random((10, 30, 30)).astype(np.float32)
    wa = a.warp(raw, (-80, -32, -32), (40, 4, 4), (0, 0, 0), (6, 12, 12), True)
    wb = b.warp(raw, (-80, -32, -32), (40, 4, 4), (0, 0, 0), (6, 12, 12), True)
    np.testing.assert_array_equal(wa, wb)
