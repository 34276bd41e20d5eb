"""Normalize, IntensityScaleShift, AsType, Squeeze, Unsqueeze: values against their
definitions, and the dtype each declares at setup is the dtype it delivers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes import AsType, IntensityScaleShift, Normalize, Squeeze, Unsqueeze
from gunpowder.testing import DTYPES

RAW = gp.ArrayKey("RAW")
COPY = gp.ArrayKey("ARR_COPY")
AFFS = gp.ArrayKey("ARR_AFFS")


def src(key, data, vs=None):
    data = np.asarray(data)
    dims = 2
    vs = gp.Coordinate(vs or (1,) * dims)
    roi = gp.Roi((0,) * dims, gp.Coordinate(data.shape[-dims:]) * vs)
    return gp.ArraySource(key, gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=vs)))


def run(pipeline, rois, **dtypes):
    request = gp.BatchRequest(random_seed=0)
    for key, roi in rois.items():
        request[key] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline):
        spec = pipeline.spec
        batch = pipeline.request_batch(request)
    for key in rois:
        assert batch[key].data.dtype == spec[key].dtype == batch[key].spec.dtype, key
    return batch, spec


def sample(dtype, shape=(3, 4)):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(0, min(info.max, 2**31), shape).astype(dtype)


ROI = gp.Roi((0, 0), (3, 4))


@settings(max_examples=20)
@given(
    st.sampled_from(DTYPES), st.sampled_from([None, 0.5]), st.sampled_from([np.float32, np.float64])
)
def test_normalize(dtype, factor, out):
    data = sample(dtype)
    batch, _ = run(src(RAW, data) + Normalize(RAW, factor, out), {RAW: ROI})
    if factor is None:
        factor = 1 / np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    assert batch[RAW].data.dtype == out
    np.testing.assert_allclose(batch[RAW].data, data.astype(out) * factor, rtol=1e-6)
    if dtype == np.uint8 and factor != 0.5:
        assert batch[RAW].data.max() <= 1.0


@settings(max_examples=20)
@given(st.sampled_from(DTYPES), st.sampled_from([2, 0.5, -1.5]), st.sampled_from([0, 1, 0.25]))
def test_intensity_scale_shift(dtype, scale, shift):
    data = sample(dtype)
    batch, _ = run(src(RAW, data) + IntensityScaleShift(RAW, scale, shift), {RAW: ROI})
    np.testing.assert_array_equal(batch[RAW].data, data * scale + shift)


def test_dtype_changing_nodes_ask_upstream_for_its_own_dtype():
    # a request carrying the dtype offered downstream must not reach the source with it
    pipeline = src(RAW, np.zeros((3, 4), np.uint8)) + Normalize(RAW) + AsType(RAW, np.float16)
    request = gp.BatchRequest(random_seed=0)
    request[RAW] = gp.ArraySpec(roi=ROI, dtype=np.float16)
    with gp.build(pipeline):
        assert pipeline.request_batch(request)[RAW].data.dtype == np.float16


def test_as_type_in_place_and_into_a_target():
    data = np.arange(12, dtype=np.float64).reshape(3, 4) + 0.5
    batch, spec = run(src(RAW, data) + AsType(RAW, np.int16), {RAW: ROI})
    np.testing.assert_array_equal(batch[RAW].data, data.astype(np.int16))
    pipeline = src(RAW, data) + AsType(RAW, np.uint8, target=COPY)
    batch, spec = run(pipeline, {RAW: gp.Roi((0, 0), (2, 2)), COPY: gp.Roi((1, 1), (2, 3))})
    assert spec[RAW].dtype == np.float64 and spec[COPY].dtype == np.uint8
    np.testing.assert_array_equal(batch[RAW].data, data[:2, :2])
    np.testing.assert_array_equal(batch[COPY].data, data[1:3, 1:4].astype(np.uint8))
    batch, _ = run(pipeline, {COPY: ROI})
    assert set(batch) == {COPY}
    with pytest.raises(gp.PipelineSetupError, match=r"AsType\(RAW\).*ARR_COPY.*already provided"):
        with gp.build(src(RAW, data) + AsType(RAW, np.uint8, COPY) + AsType(RAW, np.uint8, COPY)):
            pass


def test_unsqueeze_then_squeeze_round_trips_channel_axes():
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    pipeline = src(AFFS, data) + Unsqueeze([AFFS]) + Unsqueeze([AFFS], axis=2)
    batch, _ = run(pipeline, {AFFS: ROI})
    assert batch[AFFS].data.shape == (1, 2, 1, 3, 4)
    assert batch[AFFS].spec.roi == ROI
    pipeline = pipeline + Squeeze([AFFS], axis=2) + Squeeze([AFFS])
    batch, _ = run(pipeline, {AFFS: ROI})
    np.testing.assert_array_equal(batch[AFFS].data, data)


def test_squeeze_and_unsqueeze_refuse_spatial_axes():
    data = np.zeros((2, 3, 4), np.float32)
    request = gp.BatchRequest(random_seed=0)
    request[AFFS] = gp.ArraySpec(roi=ROI)
    for node, message in (
        (Squeeze([AFFS]), r"Squeeze.*axis 0 of ARR_AFFS has length 2"),
        (Squeeze([AFFS], axis=1), r"Squeeze.*ARR_AFFS.*non-spatial"),
        (Unsqueeze([AFFS], axis=2), r"Unsqueeze.*ARR_AFFS.*before the spatial axes"),
    ):
        pipeline = src(AFFS, data) + node
        with gp.build(pipeline), pytest.raises(gp.PipelineRequestError, match=message):
            pipeline.request_batch(request)
    with pytest.raises(gp.PipelineSetupError, match="ARR_COPY"):
        with gp.build(src(AFFS, data) + Squeeze([COPY])):
            pass
