"""DownSample, UpSample, Resample: kernels against definitions, round trips, requests mixing
voxel sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gunpowder as gp
from gunpowder.errors import PipelineSetupError
from gunpowder.nodes import DownSample, Resample, UpSample
from gunpowder.transforms import resample as K

SETTINGS = settings(deadline=None)

RAW, LOW, HIGH, OTHER = (gp.ArrayKey(n) for n in ("R_RAW", "R_LOW", "R_HIGH", "R_OTHER"))

factors = st.tuples(*[st.integers(1, 3)] * 3)


# ------------------------------------------------------------------------------- kernels


@SETTINGS
@given(st.data())
def test_upsample_then_downsample_is_identity(data):
    f = data.draw(factors)
    x = data.draw(
        hnp.arrays(np.int16, data.draw(hnp.array_shapes(min_dims=3, max_dims=4, max_side=4)))
    )
    up = K.upsample(x, f)
    assert up.shape == x.shape[:-3] + tuple(s * k for s, k in zip(x.shape[-3:], f))
    for idx in itertools.product(*[range(s) for s in up.shape]):
        spatial = idx[-3:]
        src = idx[:-3] + tuple(i // k for i, k in zip(spatial, f))
        assert up[idx] == x[src]
    np.testing.assert_array_equal(K.downsample(up, f), x)


@SETTINGS
@given(st.data())
def test_downsample_then_upsample_round_trips_constant_blocks(data):
    f = data.draw(factors)
    coarse = data.draw(
        hnp.arrays(np.uint8, data.draw(hnp.array_shapes(min_dims=3, max_dims=3, max_side=4)))
    )
    blocks = K.upsample(coarse, f)  # constant on f-blocks
    np.testing.assert_array_equal(K.upsample(K.downsample(blocks, f), f), blocks)


def test_downsample_rejects_misfit():
    with pytest.raises(ValueError, match="multiple"):
        K.downsample(np.zeros((3, 4)), (2, 2))


@SETTINGS
@given(st.data())
def test_resample_nearest_takes_the_voxel_containing_each_centre(data):
    n = data.draw(st.integers(1, 8))
    in_step = data.draw(st.sampled_from([2, 3, 4, 8]))
    out_step = data.draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12]))
    x = data.draw(hnp.arrays(np.int32, (n,)))
    in_begin = data.draw(st.integers(-5, 5)) * 4
    extent = n * in_step
    n_out = max(1, extent // out_step - 1)
    out_begin = in_begin + data.draw(st.integers(0, max(0, extent - n_out * out_step)))
    y = K.resample(x, [in_begin], [in_step], [out_begin], [out_step], [n_out], order=0)
    for j in range(n_out):
        centre = out_begin + (j + 0.5) * out_step
        i = min(max(int(np.floor((centre - in_begin) / in_step)), 0), n - 1)
        assert y[j] == x[i]


@SETTINGS
@given(st.data())
def test_resample_linear_reproduces_linear_functions(data):
    in_step = tuple(data.draw(st.sampled_from([1, 2, 4])) for _ in range(2))
    out_step = tuple(data.draw(st.sampled_from([1, 2, 3, 4])) for _ in range(2))
    shape = (6, 7)
    a, b, c = (data.draw(st.floats(-3, 3)) for _ in range(3))
    centres = [(np.arange(s) + 0.5) * st_ for s, st_ in zip(shape, in_step)]
    x = a * centres[0][:, None] + b * centres[1][None, :] + c
    # output voxels whose centres lie between the first and last input centres
    begin = [s for s in in_step]
    n_out = [max(1, (s * st_ - 2 * st_) // o) for s, st_, o in zip(shape, in_step, out_step)]
    y = K.resample(x, [0, 0], in_step, begin, out_step, n_out, order=1)
    out_centres = [b_ + (np.arange(n) + 0.5) * o for b_, n, o in zip(begin, n_out, out_step)]
    expected = a * out_centres[0][:, None] + b * out_centres[1][None, :] + c
    np.testing.assert_allclose(y, expected, atol=1e-4)


def test_resample_spline_is_exact_on_the_same_grid_and_casts_integers():
    x = np.arange(24, dtype=np.uint8).reshape(1, 4, 6)
    y = K.resample(x, [0, 0], [2, 2], [0, 0], [2, 2], [4, 6], order=3)
    np.testing.assert_array_equal(y, x)
    assert y.dtype == np.uint8
    with pytest.raises(ValueError, match="order"):
        K.resample(x, [0, 0], [2, 2], [0, 0], [2, 2], [4, 6], order=7)


# ---------------------------------------------------------------------------------- nodes


def raw_source(data: np.ndarray, voxel_size, offset=(0, 0, 0), interpolatable=True):
    vs = gp.Coordinate(voxel_size)
    roi = gp.Roi(gp.Coordinate(offset), gp.Coordinate(data.shape[-3:]) * vs)
    spec = gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=interpolatable)
    return gp.ArraySource(RAW, gp.Array(data, spec))


def on_grid(draw, within: gp.Roi, vs: gp.Coordinate) -> gp.Roi:
    grid = within.snap_to_grid(vs, mode="shrink")
    n = grid.shape / vs
    size = gp.Coordinate(draw(st.integers(1, s)) for s in n)
    begin = gp.Coordinate(draw(st.integers(0, s - z)) for s, z in zip(n, size))
    return gp.Roi(grid.offset + begin * vs, size * vs)


@SETTINGS
@given(st.data())
def test_downsample_upsample_nodes_round_trip_constant_blocks(data):
    vs = gp.Coordinate(data.draw(st.sampled_from([(40, 4, 4), (2, 2, 2), (1, 3, 5)])))
    f = gp.Coordinate(data.draw(factors))
    coarse = data.draw(hnp.arrays(np.uint16, (3, 3, 3)))
    blocks = K.upsample(coarse, f)
    offset = gp.Coordinate(data.draw(st.integers(-2, 2)) for _ in range(3)) * vs * f
    pipeline = (
        raw_source(blocks, vs, offset, interpolatable=False)
        + DownSample(RAW, tuple(f), LOW)
        + UpSample(LOW, tuple(f), HIGH)
    )
    with gp.build(pipeline) as p:
        assert p.spec[LOW].voxel_size == vs * f
        assert p.spec[HIGH].voxel_size == vs
        roi = on_grid(data.draw, p.spec[HIGH].roi, vs)
        raw_roi = on_grid(data.draw, p.spec[RAW].roi, vs)
        batch = p.request_batch(
            gp.BatchRequest(
                {HIGH: gp.ArraySpec(roi=roi), RAW: gp.ArraySpec(roi=raw_roi)}, random_seed=0
            )
        )
    assert set(batch) == {HIGH, RAW}
    assert batch[HIGH].spec.roi == roi and batch[RAW].spec.roi == raw_roi
    assert batch[HIGH].spec.voxel_size == vs
    expected = gp.Array(blocks, gp.ArraySpec(roi=p.spec[RAW].roi, voxel_size=vs)).crop(roi).data
    np.testing.assert_array_equal(batch[HIGH].data, expected)


@SETTINGS
@given(st.data())
def test_requests_mixing_voxel_sizes_return_the_requested_rois(data):
    vs = gp.Coordinate((8, 4, 4))
    raw = np.arange(2 * 6 * 12 * 12, dtype=np.float32).reshape(2, 6, 12, 12)
    target_vs = gp.Coordinate(
        data.draw(st.sampled_from([(16, 8, 8), (8, 2, 2), (24, 12, 4), (4, 8, 12)]))
    )
    order = data.draw(st.sampled_from([None, 0, 1, 3]))
    pipeline = (
        raw_source(raw, vs, (-16, 8, 0))
        + DownSample(RAW, (2, 1, 3), LOW)
        + UpSample(RAW, (2, 2, 1), HIGH)
        + Resample(RAW, target_vs, OTHER, interp_order=order)
    )
    with gp.build(pipeline) as p:
        request = gp.BatchRequest(random_seed=0)
        for key in (RAW, LOW, HIGH, OTHER):
            if data.draw(st.booleans()) or key == OTHER:
                request[key] = gp.ArraySpec(
                    roi=on_grid(data.draw, p.spec[key].roi, p.spec[key].voxel_size)
                )
        batch = p.request_batch(request)
    assert set(batch) == set(request)
    for key, spec in request.items():
        array = batch[key]
        assert array.spec.roi == spec.roi
        assert array.spec.voxel_size == p.spec[key].voxel_size
        assert array.data.shape == (2,) + tuple(spec.roi.shape / array.spec.voxel_size)
        assert array.data.dtype == np.float32


def test_resample_node_matches_kernel_and_defaults():
    vs = gp.Coordinate((4, 4, 4))
    labels = np.random.default_rng(0).integers(0, 9, (8, 8, 8)).astype(np.uint32)
    pipeline = raw_source(labels, vs, interpolatable=False) + Resample(RAW, (8, 8, 8), LOW)
    with gp.build(pipeline) as p:
        roi = gp.Roi((8, 8, 8), (16, 16, 16))
        batch = p.request_batch(gp.BatchRequest({LOW: gp.ArraySpec(roi=roi)}, random_seed=0))
    # nearest (labels are not interpolatable): centre of each 8nm voxel is at the start of
    # the second 4nm voxel it covers
    np.testing.assert_array_equal(batch[LOW].data, labels[3:7:2, 3:7:2, 3:7:2])
    assert batch[LOW].data.dtype == np.uint32


def test_resample_ndim_only_resamples_trailing_axes():
    vs = gp.Coordinate((40, 4, 4))
    raw = np.random.default_rng(1).random((3, 8, 8)).astype(np.float32)
    pipeline = raw_source(raw, vs) + Resample(RAW, (8, 8), LOW, ndim=2)
    with gp.build(pipeline) as p:
        assert p.spec[LOW].voxel_size == (40, 8, 8)
        batch = p.request_batch(
            gp.BatchRequest({LOW: gp.ArraySpec(roi=p.spec[LOW].roi)}, random_seed=0)
        )
    # linear at the midpoint of two voxels = their mean
    expected = raw.reshape(3, 4, 2, 4, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(batch[LOW].data, expected, rtol=1e-6)
    with pytest.raises(PipelineSetupError, match="ndim"):
        with gp.build(raw_source(raw, vs) + Resample(RAW, (20, 8, 8), LOW, ndim=2)):
            pass


def test_setup_errors_name_node_and_key():
    raw = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(PipelineSetupError, match="UpSample.*divisible"):
        with gp.build(raw_source(raw, (3, 3, 3)) + UpSample(RAW, 2, HIGH)):
            pass
    with pytest.raises(PipelineSetupError, match="DownSample.*factor"):
        with gp.build(raw_source(raw, (3, 3, 3)) + DownSample(RAW, (2, 2), LOW)):
            pass
    with pytest.raises(PipelineSetupError, match="R_NOPE"):
        with gp.build(raw_source(raw, (3, 3, 3)) + DownSample(gp.ArrayKey("R_NOPE"), 2, LOW)):
            pass
