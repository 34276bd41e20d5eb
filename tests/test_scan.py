"""Scan: tiles cover the request, stitching reassembles the source exactly, with and without
context (inputs larger than outputs), for reference shapes that do and do not divide the ROI."""

from __future__ import annotations

import numpy as np
import pytest
from _shared import box_sum
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array
from gunpowder.errors import PipelineRequestError, PipelineSetupError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.nodes import ArraySource, Scan
from gunpowder.nodes.scan import axis_positions, plan_shifts
from gunpowder.pipeline import Node, build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest

RAW = ArrayKey("RAW")
OUT = ArrayKey("SCAN_OUT")


class BoxSum(Node):
    """A 'valid convolution': OUT is RAW's 3x3x3 box sum, one voxel smaller on every side."""

    def setup(self, spec):
        vs = spec[RAW].voxel_size
        out = spec.copy()
        out[OUT] = ArraySpec(roi=spec[RAW].roi.grow(-vs, -vs), voxel_size=vs, dtype=np.float64)
        return out

    def prepare(self, request, rng):
        up = request.copy()
        want = up.pop(OUT)
        vs = self.upstream_spec[RAW].voxel_size
        up[RAW] = ArraySpec(roi=want.roi.grow(vs, vs))
        return up, None

    def process(self, batch, ctx):
        raw = batch[RAW]
        vs = raw.spec.voxel_size
        spec = raw.spec.replace(roi=raw.spec.roi.grow(-vs, -vs), dtype=np.float64)
        batch[OUT] = Array(box_sum(raw.data.astype(np.float64), np.float64), spec)
        return batch


class Recorder(Node):
    """Remembers every request it sees (a test probe; one instance per test)."""

    def __init__(self):
        self.seen = []

    def prepare(self, request, rng):
        self.seen.append(request.copy())
        return request, None


@st.composite
def volumes(draw, channels=False):
    vs = Coordinate(draw(st.sampled_from([(1, 1, 1), (4, 2, 2), (3, 1, 2)])))
    shape = Coordinate(draw(st.tuples(*[st.integers(3, 11)] * 3)))
    offset = Coordinate(draw(st.tuples(*[st.integers(-5, 5)] * 3))) * vs
    c = (2,) if channels else ()
    data = np.random.default_rng(draw(st.integers(0, 2**16))).random(c + tuple(shape))
    return Array(data, ArraySpec(roi=Roi(offset, shape * vs), voxel_size=vs))


@settings(max_examples=30, deadline=None)
@given(st.integers(-20, 20), st.integers(0, 40), st.integers(1, 9))
def test_axis_positions_cover_the_range(lo, span, stride):
    hi = lo + span
    pos = axis_positions(lo, hi, stride)
    assert pos[0] == lo and pos[-1] == hi
    assert all(0 < b - a <= stride for a, b in zip(pos, pos[1:]))
    assert len(pos) == (1 if span == 0 else -(-span // stride) + 1)


@settings(max_examples=25, deadline=None)
@given(volumes(channels=True), st.data())
def test_scan_reassembles_the_source(array, data):
    """Any reference shape (dividing the ROI or not) stitches back the exact source."""
    vs = array.spec.voxel_size
    full = array.spec.roi.shape / vs
    ref_shape = Coordinate(data.draw(st.integers(1, s)) for s in full)
    reference = BatchRequest()
    reference[RAW] = ArraySpec(roi=Roi((0, 0, 0), ref_shape * vs))
    workers = data.draw(st.sampled_from([1, 3]))
    pipeline = ArraySource(RAW, array) + Scan(reference, num_workers=workers, progress=False)
    sub_begin = Coordinate(data.draw(st.integers(0, s - 1)) for s in full)
    sub_shape = Coordinate(data.draw(st.integers(1, s - b)) for s, b in zip(full, sub_begin))
    sub = Roi(array.spec.roi.offset + sub_begin * vs, sub_shape * vs)
    with build(pipeline):
        whole = pipeline.request_batch(BatchRequest({RAW: ArraySpec(roi=array.spec.roi)}))
        part = pipeline.request_batch(BatchRequest({RAW: ArraySpec(roi=sub)}))
    np.testing.assert_array_equal(whole[RAW].data, array.data)
    assert whole[RAW].spec.roi == array.spec.roi
    np.testing.assert_array_equal(part[RAW].data, array.crop(sub).data)


@settings(max_examples=20, deadline=None)
@given(volumes(), st.data())
def test_scan_with_context_equals_the_whole_volume_result(array, data):
    """Inputs larger than outputs: tiled valid convolution == valid convolution of the whole."""
    vs = array.spec.voxel_size
    out_full = array.spec.roi.shape / vs - 2
    out_shape = Coordinate(data.draw(st.integers(1, s)) for s in out_full)
    reference = BatchRequest()
    reference[RAW] = ArraySpec(roi=Roi((0, 0, 0), (out_shape + 2) * vs))
    reference[OUT] = ArraySpec(roi=Roi(vs, out_shape * vs))
    recorder = Recorder()
    pipeline = ArraySource(RAW, array) + BoxSum() + recorder + Scan(reference, progress=False)
    out_roi = array.spec.roi.grow(-vs, -vs)
    with build(pipeline):
        batch = pipeline.request_batch(BatchRequest({OUT: ArraySpec(roi=out_roi)}))
    np.testing.assert_allclose(batch[OUT].data, box_sum(array.data, np.float64), rtol=1e-12)
    n = int(np.prod([len(axis_positions(0, t - o, o)) for t, o in zip(out_full, out_shape)]))
    assert len(recorder.seen) == n
    for request in recorder.seen:  # every tile is a shifted copy of the reference
        shift = request[OUT].roi.begin - reference[OUT].roi.begin
        assert request[RAW].roi == reference[RAW].roi.shift(shift)
        assert out_roi.contains(request[OUT].roi)


def test_empty_request_drives_upstream_over_the_whole_roi():
    data = np.arange(7 * 9 * 10, dtype=np.float64).reshape(7, 9, 10)
    array = Array(data, ArraySpec(roi=Roi((0, 0, 0), (7, 9, 10)), voxel_size=(1, 1, 1)))
    reference = BatchRequest()
    reference[RAW] = ArraySpec(roi=Roi((0, 0, 0), (4, 4, 4)))
    reference[OUT] = ArraySpec(roi=Roi((1, 1, 1), (2, 2, 2)))
    recorder = Recorder()
    pipeline = ArraySource(RAW, array) + BoxSum() + recorder + Scan(reference, progress=False)
    with build(pipeline):
        batch = pipeline.request_batch(BatchRequest())
    assert len(batch) == 0
    covered = np.zeros((5, 7, 8), bool)
    for request in recorder.seen:
        covered[(request[OUT].roi - Coordinate(1, 1, 1)).to_slices()] = True
        assert array.spec.roi.contains(request[RAW].roi)
    assert covered.all()


def test_threads_give_the_same_result_as_one_worker():
    data = np.random.default_rng(1).random((2, 12, 13, 14))
    array = Array(data, ArraySpec(roi=Roi((0, 0, 0), (12, 13, 14)), voxel_size=(1, 1, 1)))
    reference = BatchRequest({RAW: ArraySpec(roi=Roi((0, 0, 0), (5, 4, 6)))})
    out = []
    for workers in (1, 4):
        pipeline = ArraySource(RAW, array) + Scan(reference, workers, cache_size=2, progress=False)
        with build(pipeline):
            out.append(pipeline.request_batch(BatchRequest({RAW: ArraySpec(array.spec.roi)})))
    np.testing.assert_array_equal(out[0][RAW].data, out[1][RAW].data)


def test_plan_shifts_are_multiples_of_the_voxel_size():
    reference = BatchRequest({RAW: ArraySpec(roi=Roi((0, 0), (8, 12)), voxel_size=(4, 6))})
    request = BatchRequest({RAW: ArraySpec(roi=Roi((4, -6), (40, 30)))})
    shifts = plan_shifts(reference, request, request)
    assert all(s.is_multiple_of((4, 6)) for s in shifts)


def test_errors_name_scan_and_the_key():
    array = Array(np.zeros((4, 4, 4)), ArraySpec(roi=Roi((0, 0, 0), (4, 4, 4))))
    reference = BatchRequest({RAW: ArraySpec(roi=Roi((0, 0, 0), (2, 2, 2)))})
    pipeline = ArraySource(RAW, array) + Scan(reference, progress=False)
    with build(pipeline):
        with pytest.raises(PipelineRequestError, match=r"Scan.*SCAN_OUT"):
            request = BatchRequest({OUT: ArraySpec(roi=Roi((0, 0, 0), (2, 2, 2)))})
            pipeline.node.spec[OUT] = ArraySpec(roi=Roi((0, 0, 0), (4, 4, 4)))
            pipeline.request_batch(request)
    with pytest.raises(PipelineSetupError, match="Scan"):
        with build(ArraySource(RAW, array) + Scan(BatchRequest({OUT: ArraySpec()}))):
            pass
    too_big = BatchRequest({RAW: ArraySpec(roi=Roi((0, 0, 0), (6, 2, 2)))})
    with build(ArraySource(RAW, array) + Scan(too_big, progress=False)) as p:
        with pytest.raises(PipelineRequestError, match="does not fit"):
            p.request_batch(BatchRequest())


def test_scan_stitches_graphs():
    from gunpowder.graph import Graph
    from gunpowder.nodes import GraphSource
    from gunpowder.spec import GraphKey, GraphSpec

    points = GraphKey("SCAN_POINTS")
    rng = np.random.default_rng(3)
    locations = rng.uniform(0, 20, (60, 3))
    edges = [(i, i + 1) for i in range(0, 59, 2)]
    roi = Roi((0, 0, 0), (20, 20, 20))
    graph = Graph.from_arrays(locations, edges=edges, spec=GraphSpec(roi=roi))
    reference = BatchRequest({points: GraphSpec(roi=Roi((0, 0, 0), (6, 7, 20)))})
    pipeline = GraphSource(points, graph, trim=False) + Scan(reference, progress=False)
    request = Roi((2, 1, 0), (15, 17, 20))
    with build(pipeline):
        got = pipeline.request_batch(BatchRequest({points: GraphSpec(roi=request)}))[points]
    expected = graph.crop(request, exact=True)
    assert got.spec.roi == request
    assert sorted(n.id for n in got.nodes) == sorted(n.id for n in expected.nodes)
    for node in got.nodes:
        np.testing.assert_array_equal(node.location, graph.node(node.id).location)
    # edges whose ends fall into different tiles are in no tile: only intra-tile edges remain
    assert {(e.u, e.v) for e in got.edges} <= {(e.u, e.v) for e in expected.edges}


def test_inconsistent_requests_stay_inside_every_requested_roi(caplog):
    """1.x: the shift ranges of the keys are intersected, so no tile leaves a requested ROI
    (nor the source); the part of a key no tile reaches is zero, with a warning."""
    data = np.arange(17 * 17, dtype=np.float32).reshape(17, 17)
    array = Array(data, ArraySpec(roi=Roi((0, 0), (17, 17)), voxel_size=(1, 1)))
    reference = BatchRequest(
        {RAW: ArraySpec(roi=Roi((0, 0), (7, 7))), OUT: ArraySpec(roi=Roi((1, 1), (5, 5)))}
    )

    class Inner(Node):
        def setup(self, spec):
            out = spec.copy()
            out[OUT] = spec[RAW].copy()
            return out

        def prepare(self, request, rng):
            up = request.copy()
            want = up.pop(OUT)
            up[RAW] = ArraySpec(roi=want.roi.grow((1, 1), (1, 1)))
            return up, None

        def process(self, batch, ctx):
            raw = batch[RAW]
            batch[OUT] = raw.crop(raw.spec.roi.grow((-1, -1), (-1, -1)))
            return batch

    recorder = Recorder()
    pipeline = ArraySource(RAW, array) + recorder + Inner() + Scan(reference, progress=False)
    with build(pipeline):
        with caplog.at_level("WARNING", logger="gunpowder.nodes.scan"):
            batch = pipeline.request_batch(
                BatchRequest(
                    {
                        RAW: ArraySpec(roi=Roi((0, 0), (17, 17))),
                        OUT: ArraySpec(roi=Roi((0, 0), (15, 15))),
                    }
                )
            )
    assert all(array.spec.roi.contains(r[RAW].roi) for r in recorder.seen)
    # OUT's range (shifts 0..9, as RAW needs them inside the source) leaves RAW's last
    # row and column and OUT's first ones to no tile
    np.testing.assert_array_equal(batch[RAW].data[:16, :16], data[:16, :16])
    assert not batch[RAW].data[16].any() and not batch[RAW].data[:, 16].any()
    np.testing.assert_array_equal(batch[OUT].data[1:, 1:], data[1:15, 1:15])
    assert not batch[OUT].data[0].any() and not batch[OUT].data[:, 0].any()
    assert "filled with zeros" in caplog.text and "SCAN_OUT" in caplog.text
