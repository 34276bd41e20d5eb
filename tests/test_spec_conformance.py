"""1.x conformance of specs, requests, the engine's checks and the 1.x bases, and the errors
bad requests and bad node arguments get (each names the node and the key or argument)."""

from __future__ import annotations

import pickle
import random
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes import ArraySource, Crop, Resample
from gunpowder.nodes._args import NodeArgumentError
from gunpowder.nodes.gp_array_source import GPArraySource
from gunpowder.transforms import resample as K

RAW = gp.ArrayKey("RAW")
MASK = gp.ArrayKey("MASK")
OUT = gp.ArrayKey("OUT")
GRAPH = gp.GraphKey("GRAPH")


def source(data, vs=(1, 1, 1), offset=None, interpolatable=None, key=RAW):
    vs = gp.Coordinate(vs)
    offset = gp.Coordinate(offset or (0,) * len(vs))
    roi = gp.Roi(offset, gp.Coordinate(data.shape[-len(vs) :]) * vs)
    spec = gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=interpolatable)
    return ArraySource(key, gp.Array(data, spec))


def request(*items, seed=1):
    r = gp.BatchRequest(random_seed=seed)
    for key, roi in items:
        r[key] = gp.ArraySpec(roi=roi) if isinstance(key, gp.ArrayKey) else gp.GraphSpec(roi=roi)
    return r


# ------------------------------------------------------------------------------ update_with


def test_array_spec_update_with_changes_it_in_place_and_unites_rois():
    spec = gp.ArraySpec(voxel_size=(1, 1), dtype=np.uint8, interpolatable=False)
    out = spec.update_with(gp.ArraySpec(roi=gp.Roi((0, 0), (4, 4)), dtype=np.float32))
    assert out is spec  # 1.x: in place; returning it allows chaining
    assert spec.roi == gp.Roi((0, 0), (4, 4)) and spec.dtype == np.float32
    assert spec.voxel_size == (1, 1) and spec.interpolatable is False
    spec.update_with(gp.ArraySpec(roi=gp.Roi((2, 2), (4, 4))))
    assert spec.roi == gp.Roi((0, 0), (6, 6))
    with pytest.raises(ValueError, match="2D ROI .* 3D ROI"):
        spec.update_with(gp.ArraySpec(roi=gp.Roi((0, 0, 0), (1, 1, 1))))
    with pytest.raises(TypeError, match="needs a ArraySpec"):
        spec.update_with(gp.GraphSpec())


def test_graph_spec_update_with_and_request_update_with_merges_per_key():
    g = gp.GraphSpec(directed=True)
    g.update_with(gp.GraphSpec(roi=gp.Roi((0, 0), (2, 2)), directed=False))
    assert g.roi == gp.Roi((0, 0), (2, 2)) and g.directed is False
    a = request((RAW, gp.Roi((0, 0), (4, 4))))
    b = gp.BatchRequest()
    b[RAW] = gp.ArraySpec(roi=gp.Roi((4, 0), (4, 4)), dtype=np.uint8)
    b[MASK] = gp.ArraySpec(roi=gp.Roi((0, 0), (1, 1)))
    merged = a.update_with(b)
    assert merged[RAW].roi == gp.Roi((0, 0), (8, 4)) and merged[RAW].dtype == np.uint8
    assert set(merged) == {RAW, MASK} and set(a) == {RAW} and a[RAW].dtype is None


def test_override_spec_replaces_fields_including_the_roi():
    from gunpowder.spec import override_spec

    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)), voxel_size=(1, 1), dtype=np.uint8)
    out = override_spec(spec, gp.ArraySpec(roi=gp.Roi((2, 2), (2, 2)), dtype=np.float32))
    assert out.roi == gp.Roi((2, 2), (2, 2)) and out.dtype == np.float32
    assert out.voxel_size == (1, 1) and spec.roi == gp.Roi((0, 0), (8, 8))


# ------------------------------------------------------------ 1.x filters' dependencies


class Requires(gp.BatchFilter):
    """A 1.x filter that asks for `key` with an explicit spec."""

    def __init__(self, key, spec):
        self.key, self.wanted = key, spec

    def setup(self):
        self.updates(self.key, self.spec[self.key].copy())

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[self.key] = self.wanted
        return deps


def test_explicit_dependency_mismatches_are_request_errors_naming_node_and_key():
    roi = gp.Roi((0, 0), (4, 4))
    data = np.zeros((4, 4), np.uint16)
    cases = [
        (gp.ArraySpec(roi=roi, dtype=np.float32), "RAW requested with dtype float32"),
        (gp.ArraySpec(roi=roi, voxel_size=(2, 2)), r"RAW requested at voxel size \(2, 2\)"),
    ]
    for spec, message in cases:
        pipeline = source(data, (1, 1)) + Requires(RAW, spec)
        with gp.build(pipeline):
            with pytest.raises(gp.PipelineRequestError, match=f"ArraySource: {message}"):
                pipeline.request_batch(request((RAW, roi)))
    ok = source(data, (1, 1)) + Requires(RAW, gp.ArraySpec(roi=roi, dtype=np.uint16))
    with gp.build(ok):
        assert ok.request_batch(request((RAW, roi)))[RAW].data.dtype == np.uint16


class GraphSource(gp.BatchProvider):
    def __init__(self, directed):
        self.directed = directed

    def setup(self):
        self.provides(GRAPH, gp.GraphSpec(roi=gp.Roi((0, 0), (10, 10)), directed=self.directed))

    def provide(self, request):
        batch = gp.Batch()
        batch[GRAPH] = gp.Graph([], [], gp.GraphSpec(request[GRAPH].roi, directed=self.directed))
        return batch


@pytest.mark.parametrize("provided", [True, False])
def test_directedness_is_checked(provided):
    roi = gp.Roi((0, 0), (4, 4))
    for wanted in (True, False):
        pipeline = GraphSource(provided) + Requires(GRAPH, gp.GraphSpec(roi=roi, directed=wanted))
        with gp.build(pipeline):
            if wanted == provided:
                assert pipeline.request_batch(request((GRAPH, roi)))[GRAPH].spec.roi == roi
            else:
                with pytest.raises(gp.PipelineRequestError, match="GraphSource: GRAPH requested"):
                    pipeline.request_batch(request((GRAPH, roi)))


class LsdsLike(gp.BatchFilter):
    """As lsds' 1.x AddLocalShapeDescriptor: the mask dependency is a copy of the request for
    the float32 output (with whatever dtype that request carries)."""

    def setup(self):
        spec = self.spec[RAW].copy()
        spec.dtype = np.float32
        self.provides(OUT, spec)

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[RAW] = request[OUT].copy()
        deps[MASK] = request[OUT].copy()
        return deps

    def process(self, batch, request):
        assert request[OUT].dtype is None  # 1.x requests carry no dtype the engine filled in
        out = gp.Batch()
        spec = batch[RAW].spec.copy()
        spec.dtype = np.float32
        out[OUT] = gp.Array((batch[RAW].data * batch[MASK].data).astype(np.float32), spec)
        return out


def test_1x_filter_dependency_copied_from_a_filled_request_is_not_dtype_checked():
    roi = gp.Roi((0, 0), (4, 4))
    raw = source(np.full((4, 4), 3, np.uint64), (1, 1))
    mask = source(np.ones((4, 4), np.uint8), (1, 1), key=MASK)
    pipeline = (raw, mask) + gp.MergeProvider() + LsdsLike()
    with gp.build(pipeline):
        batch = pipeline.request_batch(request((OUT, roi)))
        assert batch[OUT].data.dtype == np.float32 and np.all(batch[OUT].data == 3)
        # a user's explicit dtype is still checked against what is provided
        wrong = request((OUT, roi))
        wrong[OUT].dtype = np.uint8
        with pytest.raises(gp.PipelineRequestError, match="LsdsLike: OUT requested with dtype"):
            pipeline.request_batch(wrong)


# ------------------------------------------------------------------ skip_node, autoskip


class AddOne(gp.BatchFilter):
    def __init__(self, p):
        self.p = p
        self.calls = 0

    def skip_node(self, request):
        return random.random() > self.p

    def process(self, batch, request):
        self.calls += 1
        batch[RAW].data = batch[RAW].data + 1


def test_skip_node_draws_from_random_seeded_with_the_request_seed():
    pipeline = source(np.zeros((4, 4)), (1, 1)) + AddOne(0.5)
    roi = gp.Roi((0, 0), (4, 4))
    with gp.build(pipeline):
        for seed in range(6):
            random.seed(seed)
            expect_skip = random.random() > 0.5
            data = pipeline.request_batch(request((RAW, roi), seed=seed))[RAW].data
            assert data.max() == (0 if expect_skip else 1)


class Provides(gp.BatchFilter):
    def setup(self):
        self.provides(OUT, self.spec[RAW].copy())
        self.enable_autoskip()

    def prepare(self, request):
        raise AssertionError("autoskip should have skipped this filter")


def test_autoskip_ignores_placeholder_requests():
    roi = gp.Roi((0, 0), (4, 4))
    pipeline = source(np.zeros((4, 4)), (1, 1)) + Provides()
    r = request((RAW, roi))
    r[OUT] = gp.ArraySpec(roi=roi, placeholder=True)
    with gp.build(pipeline):
        assert RAW in pipeline.request_batch(r)


# ------------------------------------------------------------------------ profiling span


class Sleep(gp.BatchFilter):
    def __init__(self, seconds):
        self.seconds = seconds

    def prepare(self, request):
        time.sleep(self.seconds)

    def process(self, batch, request):
        time.sleep(self.seconds)


def test_span_time_covers_the_batch_and_survives_merge_and_pickle():
    pipeline = source(np.zeros((4, 4)), (1, 1)) + Sleep(0.02) + Sleep(0.03)
    with gp.build(pipeline):
        stats = pipeline.request_batch(request((RAW, gp.Roi((0, 0), (4, 4))))).profiling_stats
    assert 0.1 <= stats.span_time() < 0.5
    assert pickle.loads(pickle.dumps(stats)).span_time() == stats.span_time()
    other = gp.ProfilingStats()
    assert other.span_time() == 0.0
    other.add("X", "process", 1.0, start=stats.span[1] + 1.0)
    other.merge_with(stats)
    assert other.span_time() == pytest.approx(stats.span_time() + 2.0)
    other.clear()
    assert other.span_time() == 0.0


# ---------------------------------------------------------------------------------- Crop


def test_crop_fractions_are_not_snapped_to_the_voxel_grid():
    pipeline = source(np.zeros((90, 9, 9)), (20, 2, 2), (200, 20, 20)) + Crop(
        RAW, fraction_negative=(0.25, 0, 0), fraction_positive=(0.25, 0, 0)
    )
    with gp.build(pipeline):
        assert pipeline.spec[RAW].roi == gp.Roi((650, 20, 20), (900, 18, 18))


# ------------------------------------------------------------------------------ Resample


@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=12))
def test_resample_linear_truncates_integers_toward_zero(values):
    """Halving the voxel count of 1D integer data on voxel centres: output voxel j's centre
    lies halfway between input voxels 2j and 2j+1, so it is their mean, truncated (1.x)."""
    x = np.array(values[: len(values) // 2 * 2], dtype=np.int32)
    y = K.resample(x, [0], [1], [0], [2], [len(x) // 2], order=1)
    expected = [int((int(a) + int(b)) / 2) for a, b in zip(x[0::2], x[1::2])]
    assert y.dtype == np.int32 and y.tolist() == expected


class Plain(gp.BatchProvider):
    """A 1.x source whose spec says what it is given (ArraySource would guess
    `interpolatable` from the dtype)."""

    def __init__(self, array):
        self.array = array

    def setup(self):
        self.provides(RAW, self.array.spec.copy())

    def provide(self, request):
        batch = gp.Batch()
        batch[RAW] = self.array.crop(request[RAW].roi)
        return batch


def test_resample_is_linear_when_interpolatable_is_unknown():
    grid = np.add.outer(np.add.outer(np.arange(20), np.arange(20)), np.arange(20))
    roi = gp.Roi((0, 0, 0), (80, 80, 80))
    for interpolatable, expected in ((None, 31), (True, 31), (False, 33)):
        spec = gp.ArraySpec(roi=roi, voxel_size=(4, 4, 4), interpolatable=interpolatable)
        pipeline = Plain(gp.Array(grid, spec)) + Resample(RAW, (8, 8, 8), OUT)
        with gp.build(pipeline):
            batch = pipeline.request_batch(request((OUT, gp.Roi((40, 40, 40), (16, 16, 16)))))
        # the 8 source voxels 10..11 per axis hold 30..33, mean 31.5: linear gives 31 (int),
        # nearest the voxel containing the centre (11, 11, 11): 33
        assert batch[OUT].data[0, 0, 0] == expected


# ----------------------------------------------------------------- ArraySource, GPArraySource


def test_array_source_takes_a_funlib_persistence_array():
    persistence = pytest.importorskip("funlib.persistence")
    data = (np.arange(20 * 22 * 24).reshape(20, 22, 24) % 251).astype(np.uint8)
    array = persistence.Array(data, offset=(100, 50, 0), voxel_size=(1, 2, 3))
    src = ArraySource(RAW, array)
    roi = gp.Roi((102, 60, 12), (6, 8, 9))
    with gp.build(src):
        assert src.spec[RAW].voxel_size == (1, 2, 3) and src.spec[RAW].dtype == np.uint8
        assert src.spec[RAW].interpolatable is False
        got = src.request_batch(request((RAW, roi)))[RAW]
    np.testing.assert_array_equal(got.data, data[2:8, 5:9, 4:7])
    assert got.spec.roi == roi


def test_gp_array_source_takes_a_gunpowder_array_only():
    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)), voxel_size=(2, 2))
    src = GPArraySource(RAW, gp.Array(np.arange(16.0).reshape(4, 4), spec))
    with gp.build(src):
        data = src.request_batch(request((RAW, gp.Roi((2, 2), (4, 4)))))[RAW].data
    np.testing.assert_array_equal(data, [[5, 6], [9, 10]])
    with pytest.raises(TypeError, match=r"GPArraySource\(RAW\): array must be a gunpowder Array"):
        GPArraySource(RAW, np.zeros((4, 4)))


# --------------------------------------------------------------- request errors (issue 13)


def test_dimension_mismatch_names_node_and_key():
    pipeline = source(np.zeros((4, 4, 4), np.float32)) + gp.Normalize(RAW)
    with gp.build(pipeline):
        with pytest.raises(
            gp.PipelineRequestError,
            match=r"Normalize\(RAW\): RAW requested with a 2D ROI .* provided in 3D",
        ):
            pipeline.request_batch(request((RAW, gp.Roi((0, 0), (2, 2)))))
        bad = request((RAW, gp.Roi((0, 0, 0), (2, 2, 2))))
        bad[RAW].voxel_size = gp.Coordinate((1, 1))
        with pytest.raises(gp.PipelineRequestError, match="RAW requested with a 2D voxel size"):
            pipeline.request_batch(bad)
    graphs = GraphSource(True)
    with gp.build(graphs):
        with pytest.raises(gp.PipelineRequestError, match="GraphSource: GRAPH requested with a 3D"):
            graphs.request_batch(request((GRAPH, gp.Roi((0, 0, 0), (2, 2, 2)))))


@pytest.mark.parametrize(
    "node, name, out",
    [
        (lambda: gp.Normalize(RAW, dtype=np.uint8), r"Normalize\(RAW\)", RAW),
        (lambda: gp.AsType(RAW, np.int32), r"AsType\(RAW\)", RAW),
        (lambda: gp.AsType(RAW, np.int32, target=OUT), r"AsType\(RAW\)", OUT),
    ],
)
def test_nan_inf_or_out_of_range_into_an_integer_dtype_is_an_error(node, name, out):
    roi = gp.Roi((0, 0), (2, 2))
    for bad, what in ((np.nan, "NaN"), (np.inf, "inf"), (1e12, "outside the range")):
        data = np.array([[0.5, 0.25], [bad, 0.0]], np.float32)
        pipeline = source(data, (1, 1)) + node()
        with gp.build(pipeline):
            pattern = f"{name}: RAW holds .*{what}"
            if what != "outside the range":
                pattern += " .*into an integer dtype"
            with pytest.raises(gp.PipelineRequestError, match=pattern):
                pipeline.request_batch(request((out, roi)))
    good = source(np.array([[0.5, 2.0], [3.9, -0.0]], np.float32), (1, 1)) + node()
    with gp.build(good):
        values = good.request_batch(request((out, roi)))[out].data
    assert np.issubdtype(values.dtype, np.integer) and values.tolist() == [[0, 2], [3, 0]]


# ------------------------------------------------------------ constructor arguments (13)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (
            lambda: gp.IntensityAugment(RAW, 1.2, 0.8, 0, 0),
            r"IntensityAugment\(RAW\): scale_min \(1.2\) must not be larger than scale_max",
        ),
        (
            lambda: gp.IntensityAugment(RAW, 0.9, 1.1, 0.1, -0.1),
            r"IntensityAugment\(RAW\): shift_min .* shift_max",
        ),
        (lambda: gp.IntensityAugment(RAW, 1, 1, 0, 0, p=1.5), r"IntensityAugment\(RAW\): p must"),
        (
            lambda: gp.IntensityAugment(RAW, 1, 1, 0, 0, z_section_wise=True, slab=(1, -1, -1)),
            r"IntensityAugment\(RAW\): give z_section_wise or slab",
        ),
        (lambda: gp.IntensityAugment(RAW, 1, 1, 0, 0, slab=(0, 2)), "slab must be"),
        (lambda: gp.NoiseAugment(RAW, p=-0.1), "NoiseAugment: p must be a probability"),
        (lambda: gp.UpSample(RAW, 0, OUT), r"UpSample\(RAW\): factor must be positive ints"),
        (lambda: gp.DownSample(RAW, (2, -1), OUT), r"DownSample\(RAW\): factor must be"),
        (lambda: gp.DownSample(RAW, 2, RAW), r"DownSample\(RAW\): target must be a new"),
        (lambda: Resample(RAW, (4, 0), OUT), r"Resample\(RAW\): voxel_size must be positive"),
        (lambda: Resample(RAW, (4, 4), OUT, interp_order=7), r"Resample\(RAW\): interp_order"),
        (lambda: Resample(RAW, (4,), OUT, ndim=2), r"Resample\(RAW\): voxel_size must be"),
        (lambda: gp.Normalize(RAW, factor=float("nan")), r"Normalize\(RAW\): factor must be"),
        (lambda: gp.Squeeze([RAW], axis=1.5), "Squeeze: axis must be an int"),
        (lambda: ArraySource(RAW, np.zeros(3), interpolatable="yes"), "interpolatable must be"),
    ],
)
def test_bad_arguments_name_node_and_argument(make, pattern):
    # a ValueError, and an AssertionError as 1.x's asserts raised
    with pytest.raises(NodeArgumentError, match=pattern) as info:
        make()
    assert isinstance(info.value, ValueError) and isinstance(info.value, AssertionError)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: gp.AsType(RAW, "no-such-dtype"), r"AsType\(RAW\): target_dtype must be a numpy"),
        (lambda: gp.Normalize(RAW, dtype="nope"), r"Normalize\(RAW\): dtype must be a numpy"),
    ],
)
def test_bad_dtypes_name_node_and_argument(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_key_arguments_must_be_keys():
    with pytest.raises(TypeError, match=r"UpSample\(raw\): source must be an ArrayKey"):
        gp.UpSample("raw", 2, OUT)
    with pytest.raises(TypeError, match="Unsqueeze: arrays must be ArrayKeys"):
        gp.Unsqueeze(["raw"])
    with pytest.raises(TypeError, match=r"IntensityAugment\(raw\): array must be an ArrayKey"):
        gp.IntensityAugment("raw", 1, 1, 0, 0)
