"""Pad and Crop: padded values equal numpy.pad of the data, only needed data is read, the
provided ROIs are declared at setup, and misuse is a clear error."""

import numpy as np
import pytest
from _shared import SpySource
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.graph import Graph
from gunpowder.nodes import Crop, GraphSource, MergeProvider, Pad

RAW = gp.ArrayKey("RAW")
OTHER = gp.ArrayKey("PAD_OTHER")
POINTS = gp.GraphKey("PAD_POINTS")


def make_source(data, offset, vs):
    vs = gp.Coordinate(vs)
    spatial = data.shape[-len(vs) :]
    roi = gp.Roi(gp.Coordinate(offset) * vs, gp.Coordinate(spatial) * vs)
    return SpySource(RAW, gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=vs)))


def request_for(roi, key=RAW, seed=1):
    request = gp.BatchRequest(random_seed=seed)
    request[key] = gp.ArraySpec(roi=roi)
    return request


def reference(data, data_roi, vs, wanted, mode, value):
    """numpy.pad of the data far enough to cover `wanted`, then sliced to it."""
    dims = len(vs)
    before = [max(0, (db - wb) // v) for db, wb, v in zip(data_roi.begin, wanted.begin, vs)]
    after = [max(0, (we - de) // v) for de, we, v in zip(data_roi.end, wanted.end, vs)]
    widths = [(0, 0)] * (data.ndim - dims) + list(zip(before, after))
    kwargs = {"constant_values": value} if mode == "constant" else {}
    padded = np.pad(data, widths, mode=mode, **kwargs)
    origin = data_roi.begin - gp.Coordinate(before) * gp.Coordinate(vs)
    rel = (wanted - origin) / gp.Coordinate(vs)
    return padded[(Ellipsis,) + rel.to_slices()]


@settings(max_examples=60)
@given(st.data())
def test_pad_equals_numpy_pad(data):
    dims = data.draw(st.sampled_from([2, 3]))
    vs = data.draw(st.sampled_from([(40, 4, 4), (2, 2, 2), (1, 3, 5)]))[:dims]
    shape = data.draw(st.tuples(*[st.integers(1, 5)] * dims))
    channels = data.draw(st.sampled_from([(), (2,)]))
    offset = data.draw(st.tuples(*[st.integers(-3, 3)] * dims))
    values = np.arange(np.prod(channels + shape), dtype=np.float32).reshape(channels + shape)
    source = make_source(values, offset, vs)
    mode = data.draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]))
    pad_vox = data.draw(st.one_of(st.none(), st.tuples(*[st.integers(0, 6)] * dims)))
    value = data.draw(st.sampled_from([None, 7]))
    size = None if pad_vox is None else gp.Coordinate(pad_vox) * gp.Coordinate(vs)
    pipeline = source + Pad(RAW, size, value=value, mode=mode)
    data_roi = source.array.spec.roi
    reach = gp.Coordinate(pad_vox if pad_vox is not None else (12,) * dims)
    begin = data.draw(st.tuples(*[st.integers(-r, s + r - 1) for r, s in zip(reach, shape)]))
    size_vox = [data.draw(st.integers(1, s + r - b)) for b, r, s in zip(begin, reach, shape)]
    wanted = gp.Roi(
        data_roi.begin + gp.Coordinate(begin) * gp.Coordinate(vs),
        gp.Coordinate(size_vox) * gp.Coordinate(vs),
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_for(wanted))
    out = batch[RAW]
    assert out.spec.roi == wanted
    expected = reference(values, data_roi, vs, wanted, mode, 0 if value is None else value)
    np.testing.assert_array_equal(out.data, expected)
    for roi in source.seen:
        assert data_roi.contains(roi)
        if mode == "constant" and data_roi.intersects(wanted):
            assert roi == data_roi.intersect(wanted)


def test_unbounded_pad_wholly_outside_gives_pad_value_and_reads_one_voxel():
    values = np.ones((2, 4, 5, 6), dtype=np.uint8)
    source = make_source(values, (1, 1, 1), (40, 4, 4))
    pipeline = source + Pad(RAW, None, value=3)
    far = gp.Roi((-40_000, 400_000, 4_000), (80, 8, 12))
    with gp.build(pipeline):
        assert pipeline.spec[RAW].roi.unbounded
        batch = pipeline.request_batch(request_for(far))
    assert batch[RAW].data.shape == (2, 2, 2, 3)
    assert batch[RAW].data.dtype == np.uint8
    assert np.all(batch[RAW].data == 3)
    assert [r.size for r in source.seen] == [40 * 4 * 4]


def test_pad_declares_grown_roi_and_leaves_other_keys():
    values = np.zeros((4, 4), dtype=np.float32)
    source = make_source(values, (0, 0), (2, 2))
    other = gp.ArraySource(OTHER, np.zeros((3, 3), dtype=np.int32))
    pipeline = (source, other) + MergeProvider() + Pad(RAW, (4, 2))
    with gp.build(pipeline):
        assert pipeline.spec[RAW].roi == gp.Roi((-4, -2), (16, 12))
        assert pipeline.spec[OTHER].roi == gp.Roi((0, 0), (3, 3))
        request = request_for(gp.Roi((-4, -2), (16, 12)))
        request[OTHER] = gp.ArraySpec(roi=gp.Roi((0, 0), (2, 2)))
        batch = pipeline.request_batch(request)
    assert batch[RAW].data.shape == (8, 6)
    assert batch[OTHER].data.shape == (2, 2)


def test_pad_partial_none_size_is_unbounded_in_that_axis():
    source = make_source(np.zeros((4, 4), dtype=np.float32), (0, 0), (1, 1))
    pipeline = source + Pad(RAW, gp.Coordinate((None, 2)))
    with gp.build(pipeline):
        roi = pipeline.spec[RAW].roi
    assert roi.begin[0] is None and roi.shape[0] is None
    assert (roi.begin[1], roi.shape[1]) == (-2, 8)


def test_pad_errors_name_node_and_key():
    source = make_source(np.zeros((4, 4), dtype=np.float32), (0, 0), (2, 2))
    with pytest.raises(gp.PipelineSetupError, match=r"Pad\(RAW\).*multiple of the voxel size"):
        with gp.build(source + Pad(RAW, (3, 2))):
            pass
    with pytest.raises(gp.PipelineSetupError, match="PAD_OTHER"):
        with gp.build(make_source(np.zeros((4, 4)), (0, 0), (1, 1)) + Pad(OTHER, (1, 1))):
            pass
    with pytest.raises(ValueError, match="unknown mode"):
        Pad(RAW, (2, 2), mode="mean")
    pipeline = make_source(np.zeros((4, 4)), (0, 0), (1, 1)) + Pad(RAW, (1, 1))
    with gp.build(pipeline), pytest.raises(gp.PipelineRequestError, match="outside the provided"):
        pipeline.request_batch(request_for(gp.Roi((-2, 0), (2, 2))))


class Record(gp.pipeline.Node):
    """Keeps the arrays that pass through it."""

    def __init__(self):
        self.seen = []

    def process(self, batch, ctx):
        self.seen.append(batch[RAW].data)
        return batch


def test_pad_inside_the_data_returns_a_view_of_the_upstream_array():
    values = np.arange(6 * 8 * 8, dtype=np.uint8).reshape(6, 8, 8)
    array = gp.Array(values, gp.ArraySpec(roi=gp.Roi((0, 0, 0), (6, 8, 8)), voxel_size=(1, 1, 1)))
    record = Record()
    pipeline = gp.ArraySource(RAW, array) + record + Pad(RAW, None)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_for(gp.Roi((1, 2, 3), (4, 4, 4))))
    assert batch[RAW].data is record.seen[0]  # no copy
    np.testing.assert_array_equal(batch[RAW].data, values[1:5, 2:6, 3:7])


def test_pad_size_must_be_non_negative_with_one_value_per_axis():
    with pytest.raises(ValueError, match=r"Pad\(RAW\): argument size must be >= 0"):
        Pad(RAW, (2, -1))
    with pytest.raises(TypeError, match=r"Pad\(RAW\): argument size"):
        Pad(RAW, "wide")
    source = make_source(np.zeros((4, 4), dtype=np.float32), (0, 0), (1, 1))
    with pytest.raises(gp.PipelineSetupError, match=r"Pad\(RAW\): argument size=.*3 dimensions"):
        with gp.build(source + Pad(RAW, (1, 1, 1))):
            pass
    assert Pad(RAW, (0, None)).size == gp.Coordinate((0, None))


def test_pad_graph_keeps_the_points_under_the_padded_roi():
    roi = gp.Roi((0, 0), (10, 10))
    locations = np.array([[1.0, 1.0], [9.5, 0.5], [5.0, 5.0]])
    graph = Graph.from_arrays(locations, spec=gp.GraphSpec(roi=roi))
    pipeline = GraphSource(POINTS, graph) + Pad(POINTS, (4, 4))
    with gp.build(pipeline):
        assert pipeline.spec[POINTS].roi == gp.Roi((-4, -4), (18, 18))
        wanted = gp.Roi((-4, -4), (10, 8))
        request = gp.BatchRequest({POINTS: gp.GraphSpec(roi=wanted)}, random_seed=0)
        batch = pipeline.request_batch(request)
        assert batch[POINTS].spec.roi == wanted
        np.testing.assert_allclose(batch[POINTS].locations, [[1.0, 1.0]])
        outside = gp.Roi((-4, 10), (4, 4))
        request = gp.BatchRequest({POINTS: gp.GraphSpec(roi=outside)}, random_seed=0)
        batch = pipeline.request_batch(request)
        assert batch[POINTS].spec.roi == outside and len(batch[POINTS]) == 0


# ---------------------------------------------------------------------------------------------
# Crop


def test_crop_to_roi_and_fractions():
    values = np.arange(100, dtype=np.float32).reshape(10, 10)
    source = make_source(values, (0, 0), (2, 2))
    pipeline = source + Crop(RAW, gp.Roi((4, 6), (8, 8)))
    with gp.build(pipeline):
        assert pipeline.spec[RAW].roi == gp.Roi((4, 6), (8, 8))
        batch = pipeline.request_batch(request_for(gp.Roi((4, 6), (8, 8))))
        np.testing.assert_array_equal(batch[RAW].data, values[2:6, 3:7])
        with pytest.raises(gp.PipelineRequestError, match=r"Crop\(RAW\).*outside the provided"):
            pipeline.request_batch(request_for(gp.Roi((0, 0), (4, 4))))
    source = make_source(values, (0, 0), (2, 2))
    pipeline = source + Crop(RAW, fraction_negative=(0.25, 0), fraction_positive=0.1)
    with gp.build(pipeline):
        # 20 x 20 world units: shrink by 5 below and 2 above, not snapped to the voxel grid
        # (1.x): requests inside it must still be on the grid
        assert pipeline.spec[RAW].roi == gp.Roi((5, 0), (13, 18))
        batch = pipeline.request_batch(request_for(gp.Roi((6, 0), (12, 18))))
        np.testing.assert_array_equal(batch[RAW].data, values[3:9, 0:9])
        with pytest.raises(gp.PipelineRequestError, match=r"Crop\(RAW\).*outside the provided"):
            pipeline.request_batch(request_for(gp.Roi((4, 0), (12, 18))))
        with pytest.raises(gp.PipelineRequestError, match="multiple of its voxel size"):
            pipeline.request_batch(request_for(gp.Roi((5, 0), (12, 18))))


def test_crop_errors():
    source = make_source(np.zeros((4, 4)), (0, 0), (2, 2))
    with pytest.raises(gp.PipelineSetupError, match=r"Crop\(RAW\).*not inside"):
        with gp.build(source + Crop(RAW, gp.Roi((0, 0), (10, 2)))):
            pass
    # an explicit ROI off the voxel grid is offered as it is (1.x); requests are checked
    with gp.build(
        make_source(np.zeros((4, 4)), (0, 0), (2, 2)) + Crop(RAW, gp.Roi((1, 0), (4, 2)))
    ) as p:
        assert p.spec[RAW].roi == gp.Roi((1, 0), (4, 2))
        with pytest.raises(gp.PipelineRequestError, match="outside the provided"):
            p.request_batch(request_for(gp.Roi((0, 0), (2, 2))))
    with pytest.raises(gp.PipelineSetupError, match="exceed 1"):
        with gp.build(
            make_source(np.zeros((4, 4)), (0, 0), (2, 2))
            + Crop(RAW, fraction_negative=0.6, fraction_positive=0.6)
        ):
            pass
    with pytest.raises(ValueError, match="either roi or fractions"):
        Crop(RAW, gp.Roi((0, 0), (2, 2)), fraction_negative=0.1)
    with pytest.raises(AssertionError, match=r"Crop\(RAW\): fraction_positive must be in \[0, 1\]"):
        Crop(RAW, fraction_positive=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"Crop\(RAW\): roi must be a Roi"):
        Crop(RAW, roi=((0, 0), (2, 2)))
