"""AddVectorMap and its kernel, against the written-out definition of a vector map."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.batch import Array, Batch
from gunpowder.geometry import Coordinate, Roi
from gunpowder.graph import Graph
from gunpowder.graph import Node as GraphNode
from gunpowder.nodes.add_vector_map import AddVectorMap
from gunpowder.pipeline import Source
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec, ProviderSpec
from gunpowder.transforms.vector_map import split_among_partners, vector_map

SETTINGS = settings(deadline=None, max_examples=25)


class Provider(Source):
    """Serves fixed arrays and graphs, cropped to what is asked; records graph requests."""

    def __init__(self, arrays: dict[ArrayKey, Array], graphs: dict[GraphKey, Graph]) -> None:
        self.arrays = arrays
        self.graphs = graphs
        self.asked: dict[Any, Roi] = {}

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        spec = ProviderSpec()
        for key, array in self.arrays.items():
            spec[key] = array.spec.copy()
        for key, graph in self.graphs.items():
            spec[key] = graph.spec.copy()
        return spec

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        batch = Batch()
        for key, spec in request.items():
            self.asked[key] = spec.roi
            source = self.arrays.get(key)
            batch[key] = (
                source.crop(spec.roi) if source is not None else self.graphs[key].crop(spec.roi)
            )
        return batch


def reference_min_distance(shape, origin, vs, sources, partners, radius, mask=None):
    """The definition, voxel by voxel: nearest source within radius, its nearest partner."""
    out = np.zeros((len(shape),) + tuple(shape), dtype=np.float32)
    vs = np.asarray(vs, float)
    origin = np.asarray(origin, float)
    for v in itertools.product(*[range(s) for s in shape]):
        best, owner = np.inf, None
        for k, loc in enumerate(sources):
            if len(partners[k]) == 0:
                continue
            c = np.floor((loc - origin) / vs).astype(int)
            if mask is not None:
                if np.any(c < 0) or np.any(c >= shape) or mask[v] != mask[tuple(c)]:
                    continue
            d = np.linalg.norm((np.array(v) - c) * vs)
            if d <= radius and d < best:
                best, owner = d, k
        if owner is None:
            continue
        ps = np.asarray(partners[owner], float)
        target = ps[np.argmin(np.linalg.norm(ps - sources[owner], axis=1))]
        out[(slice(None),) + v] = target - (origin + np.array(v) * vs)
    return out


points_2d = st.lists(
    st.tuples(st.floats(-8, 40, allow_nan=False), st.floats(-8, 40, allow_nan=False)),
    min_size=1,
    max_size=4,
)


@SETTINGS
@given(
    sources=points_2d,
    n_partners=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    radius=st.floats(1, 15),
    seed=st.integers(0, 2**16),
    use_mask=st.booleans(),
)
def test_kernel_min_distance_matches_definition(sources, n_partners, radius, seed, use_mask):
    rng = np.random.default_rng(seed)
    shape, origin, vs = (8, 6), (0.0, 4.0), (4, 6)
    src = np.array(sources, float)
    partners = [rng.uniform(-10, 50, size=(n, 2)) for n in n_partners[: len(src)]]
    mask = rng.integers(0, 2, size=shape) if use_mask else None
    got = vector_map(shape, origin, vs, src, partners, radius, "min_distance", mask)
    want = reference_min_distance(shape, origin, vs, src, partners, radius, mask)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@SETTINGS
@given(m=st.integers(0, 40), p=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_split_among_partners_is_balanced(m, p, seed):
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 10, size=(m, 3))
    partners = rng.uniform(0, 10, size=(p, 3))
    assigned = split_among_partners(positions, np.zeros(3), partners)
    assert np.all((assigned >= 0) & (assigned < p))
    counts = np.bincount(assigned, minlength=p)
    assert counts.sum() == m
    assert counts.max() - counts.min() <= 1


def test_kernel_all_points_every_vector_to_a_partner():
    shape, vs = (10, 10, 10), (2, 2, 2)
    src = np.array([[10.0, 10.0, 10.0]])
    partners = [np.array([[0.0, 0.0, 0.0], [19.0, 19.0, 19.0], [10.0, 0.0, 19.0]])]
    out = vector_map(shape, (0, 0, 0), vs, src, partners, 6, "all")
    hits = {i: 0 for i in range(3)}
    near = 0
    for v in itertools.product(range(10), range(10), range(10)):
        position = np.array(v) * 2.0
        if np.linalg.norm(np.array(v) - 5) * 2 <= 6:
            near += 1
            target = position + out[(slice(None),) + v]
            match = [i for i, p in enumerate(partners[0]) if np.allclose(target, p)]
            assert len(match) == 1
            hits[match[0]] += 1
        else:
            assert not out[(slice(None),) + v].any()
    assert sum(hits.values()) == near
    assert max(hits.values()) - min(hits.values()) <= 1


def test_kernel_rejects_unknown_criterion():
    with pytest.raises(ValueError, match="criterion"):
        vector_map((2,), (0,), (1,), np.zeros((0, 1)), [], 1, "nearest")


# ------------------------------------------------------------------------------------------
# the node


def synapse_setup(locations_pre, partners_of, locations_post, roi, labels=None, vs=(4, 2, 2)):
    pre, post, vmap = GraphKey("PRE_AVM"), GraphKey("POST_AVM"), ArrayKey("VMAP_AVM")
    pre_nodes = [
        GraphNode(i + 1, loc, attrs={"partner_ids": partners_of[i]})
        for i, loc in enumerate(locations_pre)
    ]
    post_nodes = [GraphNode(100 + i, loc) for i, loc in enumerate(locations_post)]
    graphs = {
        pre: Graph(pre_nodes, [], GraphSpec(roi=roi)),
        post: Graph(post_nodes, [], GraphSpec(roi=roi)),
    }
    arrays = {}
    label_key = None
    if labels is not None:
        label_key = ArrayKey("LABELS_AVM")
        arrays[label_key] = Array(labels, ArraySpec(roi=roi, voxel_size=vs))
    return Provider(arrays, graphs), pre, post, vmap, label_key


def test_node_matches_definition_and_sees_sources_outside():
    roi = Roi((0, 0, 0), (40, 40, 40))
    vs = Coordinate(4, 2, 2)
    pre_locs = [(20.0, 20.0, 20.0), (20.0, 21.0, 3.0)]
    post_locs = [(30.0, 30.0, 30.0), (10.0, 25.0, 30.0), (5.0, 5.0, 5.0)]
    source, pre, post, vmap, _ = synapse_setup(pre_locs, [[100, 101], [102]], post_locs, roi)
    node = AddVectorMap(
        {vmap: (pre, post)}, {vmap: vs}, radius_phys=8, partner_criterion="min_distance"
    )
    pipeline = source + node
    request_roi = Roi((8, 8, 8), (24, 24, 24))  # the second source (x=3) lies outside
    with gp.build(pipeline):
        request = BatchRequest()
        request[vmap] = ArraySpec(roi=request_roi)
        batch = pipeline.request_batch(request)
    got = batch[vmap]
    assert got.spec.roi == request_roi
    assert got.data.dtype == np.float32
    sources = np.array(pre_locs)
    partners = [np.array(post_locs[:2]), np.array(post_locs[2:])]
    want = reference_min_distance(
        request_roi.shape / vs, request_roi.offset, vs, sources, partners, 8
    )
    np.testing.assert_allclose(got.data, want, atol=1e-4)
    assert np.any(got.data[:, :, :, 0])  # the outside source reaches in
    # the sources were asked for the ROI grown by the radius, the targets as well
    assert source.asked[pre].contains(request_roi.grow((8, 8, 8), (8, 8, 8)))


def test_node_stayinside_and_padding():
    roi = Roi((0, 0, 0), (40, 40, 40))
    vs = Coordinate(4, 2, 2)
    labels = np.ones((10, 20, 20), dtype=np.uint32)
    labels[:, :, 10:] = 2  # x >= 20 is another object
    source, pre, post, vmap, label_key = synapse_setup(
        [(20.0, 20.0, 18.0)], [[100]], [(20.0, 20.0, 30.0)], roi, labels=labels
    )
    node = AddVectorMap(
        {vmap: (pre, post)},
        {vmap: vs},
        radius_phys=10,
        partner_criterion="all",
        stayinside_array_keys={vmap: label_key},
        pad_for_partners=(0, 4, 4),
    )
    pipeline = source + node
    with gp.build(pipeline):
        assert pipeline.spec[vmap].roi == Roi((0, 4, 4), (40, 32, 32))
        request = BatchRequest()
        request[vmap] = ArraySpec(roi=Roi((0, 4, 4), (40, 32, 32)))
        batch = pipeline.request_batch(request)
    data = batch[vmap].data
    nonzero = np.any(data != 0, axis=0)
    assert nonzero.any()
    # voxels with x >= 20 (index >= 8 in the batch, which starts at x = 4) are in object 2
    assert not nonzero[:, :, 8:].any()


def test_node_validates_arguments():
    vmap, pre, post = ArrayKey("VMAP_AVM"), GraphKey("PRE_AVM"), GraphKey("POST_AVM")
    good = dict(
        src_and_trg_points={vmap: (pre, post)},
        voxel_sizes={vmap: (1, 1, 1)},
        radius_phys=3,
        partner_criterion="all",
    )
    AddVectorMap(**good)
    bad = [
        ({"partner_criterion": "closest"}, "partner_criterion"),
        ({"radius_phys": 0}, "radius_phys"),
        ({"voxel_sizes": {}}, "voxel_sizes"),
        ({"src_and_trg_points": {vmap: (pre,)}}, "src_and_trg_points"),
        ({"pad_for_partners": (-1, 0, 0)}, "pad_for_partners"),
        ({"stayinside_array_keys": {ArrayKey("OTHER_AVM"): vmap}}, "stayinside_array_keys"),
    ]
    for change, word in bad:
        with pytest.raises(ValueError, match=f"AddVectorMap: .*{word}|AddVectorMap: {word}"):
            AddVectorMap(**{**good, **change})
