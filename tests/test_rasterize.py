"""Rasterisation against its definition (1.x's convention): a point is drawn at the centre of
the voxel containing it, and a ball of radius r covers exactly the voxels whose centres lie
within r of that (anisotropic, world units); tubes along edges plus the voxels they run through,
hollow balls (distance to the nearest primitive), peaks, masks, colours; and the
RasterizeGraph node in a pipeline."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array
from gunpowder.errors import PipelineSetupError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.graph import Graph, clip_segments
from gunpowder.nodes import (
    ArraySource,
    GraphSource,
    MergeProvider,
    RasterizationSettings,
    RasterizeGraph,
)
from gunpowder.pipeline import build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec
from gunpowder.transforms.rasterize import PEAK_TRUNCATE, rasterize, segment_voxels

POINTS = GraphKey("RASTER_TEST_POINTS")
TARGET = ArrayKey("RASTER_TEST_TARGET")
LABELS = ArrayKey("RASTER_TEST_LABELS")


@st.composite
def grids(draw, dims=3):
    shape = draw(st.tuples(*[st.integers(1, 9)] * dims))
    vs = draw(st.sampled_from([(1,) * dims, (4,) * dims, (40, 4, 4)[-dims:], (3, 5, 2)[-dims:]]))
    offset = tuple(draw(st.integers(-3, 3)) * v for v in vs)
    return shape, offset, vs


def centres(shape, offset, vs):
    axes = [offset[a] + (np.arange(shape[a]) + 0.5) * vs[a] for a in range(len(shape))]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def points_in(draw, shape, offset, vs, n):
    """World points around (also outside) the grid, on a half-voxel lattice to hit borders."""
    pts = []
    for _ in range(n):
        pts.append(
            [
                offset[a] + draw(st.integers(-4, 2 * shape[a] + 4)) * vs[a] / 2
                for a in range(len(shape))
            ]
        )
    return np.array(pts, dtype=np.float64).reshape(n, len(shape))


def snap(p, offset, vs):
    """The centre of the voxel containing world point p."""
    return np.array(
        [o + (math.floor((x - o) / v) + 0.5) * v for x, o, v in zip(p, offset, vs)], dtype=float
    )


def ball_d2(c, p, r):
    d2 = np.zeros(c.shape[:-1])
    for a in range(len(p)):
        d2 = d2 + ((c[..., a] - p[a]) / r[a]) ** 2
    return d2


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ball_covers_exactly_the_voxels_within_the_radius(data):
    shape, offset, vs = data.draw(grids())
    pts = points_in(data.draw, shape, offset, vs, data.draw(st.integers(0, 4)))
    radius = np.array([data.draw(st.integers(1, 3)) * v / 2 for v in vs], dtype=np.float64)
    out = rasterize(shape, offset, vs, pts, radius)
    c = centres(shape, offset, vs)
    expected = np.zeros(shape, bool)
    for p in pts:
        expected |= ball_d2(c, snap(p, offset, vs), radius) <= 1
    assert np.array_equal(out.astype(bool), expected)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
    for p in pts:  # the voxel holding a point is always painted
        index = tuple(math.floor((x - o) / v) for x, o, v in zip(p, offset, vs))
        if all(0 <= i < n for i, n in zip(index, shape)):
            assert out[index] == 1


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_hollow_balls(data):
    shape, offset, vs = data.draw(grids())
    pts = points_in(data.draw, shape, offset, vs, 2)
    radius = np.array([data.draw(st.integers(2, 4)) * v / 2 for v in vs], dtype=np.float64)
    f = data.draw(st.sampled_from([0.25, 0.5, 0.75]))
    out = rasterize(
        shape,
        offset,
        vs,
        pts,
        radius,
        inner_radius_fraction=f,
        dtype=np.int32,
        node_values=[5, 5],
        bg_value=-1,
    )
    c = centres(shape, offset, vs)
    # the distance to the nearest point in [f, 1] (1.x: a distance transform from all points)
    d2 = np.min([ball_d2(c, snap(p, offset, vs), radius) for p in pts], axis=0)
    expected = (d2 <= 1) & (d2 >= f * f)
    assert np.array_equal(out == 5, expected)
    assert np.all(out[~expected] == -1)


def segment_d2(c, p, q, r):
    u = (c - p) / r
    w = (q - p) / r
    ww = w @ w
    t = np.zeros(c.shape[:-1]) if ww == 0 else np.clip(u @ w / ww, 0, 1)
    return np.sum((u - t[..., None] * w) ** 2, axis=-1)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_edges_are_tubes_of_the_radius(data):
    shape, offset, vs = data.draw(grids())
    pts = points_in(data.draw, shape, offset, vs, 3)
    radius = np.array([data.draw(st.integers(1, 3)) * v / 2 for v in vs], dtype=np.float64)
    edges = np.array([[0, 1], [1, 2]])
    out = rasterize(shape, offset, vs, pts, radius, edges=edges).astype(bool)
    c = centres(shape, offset, vs)
    # tubes along the (unsnapped) segments, plus the voxels the segments run through
    d2 = np.min([segment_d2(c, pts[i], pts[j], radius) for i, j in edges], axis=0)
    through = np.zeros(shape, bool)
    for i, j in edges:
        for voxel in segment_voxels(shape, offset, vs, pts[i], pts[j]):
            through[tuple(voxel)] = True
    nodes = np.min([ball_d2(c, snap(p, offset, vs), radius) for p in pts], axis=0)
    assert np.all(out[(d2 < 1 - 1e-9) | through | (nodes <= 1)])
    assert not np.any(out[(d2 > 1 + 1e-9) & ~through & (nodes > 1)])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_segment_voxels_are_the_voxels_holding_a_point_of_the_segment(data):
    shape, offset, vs = data.draw(grids(dims=data.draw(st.integers(1, 3))))
    p, q = points_in(data.draw, shape, offset, vs, 2)
    got = {tuple(v) for v in segment_voxels(shape, offset, vs, p, q).tolist()}
    # every voxel found touches the segment (its closed box; exact faces count)
    for v in got:
        box = Roi(tuple(o + i * s for o, i, s in zip(offset, v, vs)), tuple(int(s) for s in vs))
        assert clip_segments(p[None], q[None], box)[2][0]
    # and every voxel holding one of many points along the segment is found
    for t in np.linspace(0, 1, 501):
        x = p + t * (q - p)
        v = tuple(math.floor((a - o) / s) for a, o, s in zip(x, offset, vs))
        if all(0 <= i < n for i, n in zip(v, shape)):
            assert v in got


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_peaks_are_gaussians_of_sigma_radius(data):
    shape, offset, vs = data.draw(grids())
    pts = points_in(data.draw, shape, offset, vs, 2)
    sigma = np.array([data.draw(st.integers(1, 4)) * v / 2 for v in vs], dtype=np.float64)
    out = rasterize(shape, offset, vs, pts, sigma, mode="peak", dtype=np.float32)
    c = centres(shape, offset, vs)
    expected = np.zeros(shape)
    for p in pts:
        d2 = ball_d2(c, snap(p, offset, vs), sigma)
        expected = np.maximum(expected, np.where(d2 <= PEAK_TRUNCATE**2, np.exp(-d2 / 2), 0))
    assert np.allclose(out, expected, atol=1e-6)
    assert out.max() <= 1.0


def test_zero_radius_marks_the_voxel_containing_the_point():
    out = rasterize((4, 4), (0, 0), (10, 10), [[5, 5], [39.9, 20.0], [-1, 5]], 0)
    assert np.argwhere(out).tolist() == [[0, 0], [3, 2]]
    # a flat axis: discs in each section the point lies in (radius 0 along z)
    out = rasterize((3, 5, 5), (0, 0, 0), (40, 4, 4), [[45, 10, 10]], (0, 4, 4))
    assert out[0].sum() == 0 and out[2].sum() == 0 and out[1].sum() == 5
    # edges with a flat axis follow the segment through the sections
    out = rasterize(
        (3, 5, 5), (0, 0, 0), (40, 4, 4), [[5, 2, 2], [115, 18, 18]], (0, 2, 2), edges=[[0, 1]]
    )
    assert all(out[z].sum() > 0 for z in range(3))


def test_mask_and_colours():
    mask = np.zeros((1, 10), dtype=np.uint64)
    mask[0, 5:] = 7
    # the point sits in object 0 near the border: its ball stops at the border
    out = rasterize((1, 10), (0, 0), (1, 1), [[0.5, 3.5]], (1, 3), mask=mask, node_mask_labels=[0])
    assert out[0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]  # centre 6.5 is in object 7
    out = rasterize(
        (1, 10),
        (0, 0),
        (1, 1),
        [[0.5, 1.5], [0.5, 8.5]],
        (1, 1),
        node_values=[3, None],
        dtype=np.uint64,
    )
    assert out[0].tolist() == [3, 3, 3, 0, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="float dtype"):
        rasterize((2,), (0,), (1,), [[0.5]], 1, mode="peak")
    with pytest.raises(ValueError, match="radius"):
        rasterize((2, 2), (0, 0), (1, 1), [[0.5, 0.5]], (1, 2, 3))


def skeleton_source(dims=3):
    rng = np.random.default_rng(3)
    locs = rng.uniform(0, 120, size=(30, dims))
    edges = [(i, i + 1) for i in range(29)]
    spec = GraphSpec(roi=Roi((0,) * dims, (120,) * dims))
    graph = Graph.from_arrays(locs, edges=edges, spec=spec)
    for i, n in enumerate(graph.nodes):
        n.attrs["color"] = i % 3 + 1
    for e in graph.edges:
        e.attrs["color"] = 9
    return graph


@pytest.mark.parametrize("mode", ["ball", "peak"])
def test_rasterize_graph_node_sees_points_outside_the_array(mode):
    graph = skeleton_source()
    vs = Coordinate(8, 4, 4)
    settings_ = RasterizationSettings(radius=(10, 6, 6), mode=mode)
    pipeline = GraphSource(POINTS, graph) + RasterizeGraph(
        POINTS, TARGET, ArraySpec(voxel_size=vs), settings_
    )
    roi = Roi((40, 40, 40), (48, 40, 40))
    request = BatchRequest(random_seed=1)
    request[TARGET] = ArraySpec(roi=roi)
    request[POINTS] = GraphSpec(roi=Roi((50, 50, 50), (10, 10, 10)))
    with build(pipeline) as p:
        spec = p.spec[TARGET]
        batch = p.request_batch(request)
    assert spec.voxel_size == vs and spec.roi == Roi((0, 0, 0), (120, 120, 120))
    assert spec.dtype == (np.float32 if mode == "peak" else np.uint8)
    # the full graph, rasterised directly, gives the same voxels
    expected = rasterize(
        roi.shape / vs,
        roi.offset,
        vs,
        graph.locations,
        (10, 6, 6),
        edges=graph.edge_index(),
        mode=mode,
        dtype=spec.dtype,
    )
    assert np.allclose(batch[TARGET].data, expected)
    assert batch[TARGET].spec.roi == roi
    assert batch[POINTS].spec.roi == Roi((50, 50, 50), (10, 10, 10))
    assert expected.any()


def test_rasterize_graph_node_colours_and_mask():
    rng = np.random.default_rng(5)
    locs = rng.uniform(0, 120, size=(25, 2))
    graph = Graph.from_arrays(locs, spec=GraphSpec(roi=Roi((0, 0), (120, 120))))
    for i, n in enumerate(graph.nodes):
        if i % 4:
            n.attrs["color"] = i
    labels = np.zeros((30, 30), dtype=np.uint32)
    labels[:, 15:] = 4
    labels[20:, :] = 2
    mask_array = Array(labels, ArraySpec(roi=Roi((0, 0), (120, 120)), voxel_size=(4, 4)))
    settings_ = RasterizationSettings(radius=(9, 13), mask=LABELS, color_attr="color")
    pipeline = (GraphSource(POINTS, graph), ArraySource(LABELS, mask_array)) + MergeProvider()
    pipeline += RasterizeGraph(
        POINTS, TARGET, ArraySpec(voxel_size=(4, 4), dtype=np.uint16), settings_
    )
    roi = Roi((20, 20), (80, 80))
    request = BatchRequest(random_seed=1)
    request[TARGET] = ArraySpec(roi=roi)
    with build(pipeline) as p:
        out = p.request_batch(request)[TARGET].data
    assert out.dtype == np.uint16
    # definition: node i (with a colour) paints voxels within its radius in its own object
    c = centres((20, 20), (20, 20), (4, 4))
    window = labels[5:25, 5:25]
    expected = np.zeros((20, 20), np.uint16)
    for i, n in enumerate(graph.nodes):
        if "color" not in n.attrs:
            continue
        own = labels[tuple((n.location // 4).astype(int))]
        s = snap(n.location, (0, 0), (4, 4))
        expected[(ball_d2(c, s, (9, 13)) <= 1) & (window == own)] = i
    assert np.array_equal(out, expected)
    assert expected.any()
    with pytest.raises(PipelineSetupError, match="needs RASTER_TEST_LABELS"):
        with build(GraphSource(POINTS, graph) + RasterizeGraph(POINTS, TARGET, settings=settings_)):
            pass
    with pytest.raises(ValueError, match="color_attr"):
        RasterizationSettings(1, mode="peak", color_attr="c")
