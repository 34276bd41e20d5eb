"""ZeroOutConstSections against a per-section loop: exactly the constant sections (along the
first spatial axis, per channel, within the requested ROI) become 0, nothing else changes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes import ZeroOutConstSections
from gunpowder.nodes.zero_out_const_sections import zero_const_sections

RAW = gp.ArrayKey("ZS_RAW")


def loop_definition(data, dims):
    """Section by section, channel by channel: a constant section becomes 0."""
    out = np.array(data)
    channels = out.reshape((-1,) + out.shape[out.ndim - dims :])
    for c in range(channels.shape[0]):
        for z in range(channels.shape[1]):
            if np.unique(channels[c, z]).size == 1:
                channels[c, z] = 0
    return channels.reshape(out.shape)


@st.composite
def volumes(draw):
    """Data (channels first) with some sections made constant, and its spatial dims."""
    dims = draw(st.integers(2, 3))
    channel_axes = draw(st.integers(0, 2))
    shape = draw(st.tuples(*[st.integers(1, 3)] * channel_axes, *[st.integers(1, 5)] * dims))
    dtype = draw(st.sampled_from([np.float32, np.uint8, np.int16]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.integers(0, 3, size=shape).astype(dtype)
    axis = channel_axes
    for z in draw(st.lists(st.integers(0, shape[axis] - 1), max_size=3)):
        index = (slice(None),) * axis + (z,)
        data[index] = draw(st.integers(0, 100))
    return data, dims


@settings(max_examples=200, deadline=None)
@given(volumes())
def test_kernel_matches_the_per_section_definition(volume):
    data, dims = volume
    before = data.copy()
    out = zero_const_sections(data, dims)
    np.testing.assert_array_equal(out, loop_definition(data, dims))
    assert out.dtype == data.dtype
    np.testing.assert_array_equal(data, before)  # the input is not changed


def source(data, vs=(4, 2, 2)):
    roi = gp.Roi((0, 0, 0), gp.Coordinate(data.shape[-3:]) * gp.Coordinate(vs))
    return gp.ArraySource(RAW, gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=vs)))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
)
def test_node_judges_sections_within_the_requested_roi(seed, begin, shape):
    rng = np.random.default_rng(seed)
    data = rng.uniform(-1, 1, size=(6, 6, 6)).astype(np.float32)
    data[2] = -1.0  # a blank section
    data[4, :3, :3] = 0.5  # constant only in part of the section
    vs = gp.Coordinate(4, 2, 2)
    roi = gp.Roi(gp.Coordinate(begin) * vs, gp.Coordinate(shape) * vs)
    request = gp.BatchRequest(random_seed=0)
    request[RAW] = gp.ArraySpec(roi=roi)
    with gp.build(source(data) + ZeroOutConstSections(RAW)) as p:
        out = p.request_batch(request)[RAW]
    cut = data[(roi / vs).to_slices()]
    np.testing.assert_array_equal(out.data, loop_definition(cut, 3))
    assert out.spec.roi == roi and out.data.dtype == np.float32
    np.testing.assert_array_equal(data[2], -1.0)  # the source's data is untouched


def test_setup_errors_name_the_node_and_key():
    with pytest.raises(gp.PipelineSetupError, match=r"ZeroOutConstSections.*ZS_OTHER"):
        with gp.build(source(np.zeros((2, 2, 2))) + ZeroOutConstSections(gp.ArrayKey("ZS_OTHER"))):
            pass
    flat = gp.ArraySource(RAW, gp.Array(np.zeros(4), gp.ArraySpec(roi=gp.Roi((0,), (4,)))))
    with pytest.raises(gp.PipelineSetupError, match="at least 2 spatial dimensions"):
        with gp.build(flat + ZeroOutConstSections(RAW)):
            pass
