"""gunpowder.contrib nodes and their kernels, against written-out definitions."""

from __future__ import annotations

import itertools
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gunpowder as gp
from gunpowder.batch import Array, Batch
from gunpowder.contrib import (
    AddBlobsFromPoints,
    AddBoundaryDistanceGradients,
    AddGtMaskExclusiveZone,
    AddNonsymmetricAffinities,
    AddVectorMap,
    Hdf5PointsSource,
    PrepareMalis,
)
from gunpowder.geometry import Coordinate, Roi
from gunpowder.graph import Graph
from gunpowder.graph import Node as GraphNode
from gunpowder.pipeline import Source
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec, ProviderSpec
from gunpowder.transforms.blobs import place_blobs
from gunpowder.transforms.boundary_distance import boundary_distance, face_boundaries
from gunpowder.transforms.exclusive_zone import exclusive_zone_mask
from gunpowder.transforms.malis import malis_components
from gunpowder.transforms.nonsymmetric_affinities import shifted_conjunction

SETTINGS = settings(deadline=None, max_examples=25)


class Provider(Source):
    """Serves fixed arrays and graphs, cropped to what is asked."""

    def __init__(self, arrays: dict[ArrayKey, Array], graphs: dict | None = None) -> None:
        self.arrays = arrays
        self.graphs = graphs or {}

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        spec = ProviderSpec()
        for key, value in {**self.arrays, **self.graphs}.items():
            spec[key] = value.spec.copy()
        return spec

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        batch = Batch()
        for key, spec in request.items():
            value = self.arrays.get(key)
            value = value if value is not None else self.graphs[key]
            batch[key] = value.crop(spec.roi)
        return batch


def run(pipeline: Any, request: dict) -> Batch:
    with gp.build(pipeline):
        req = BatchRequest()
        for key, roi in request.items():
            req[key] = GraphSpec(roi=roi) if isinstance(key, GraphKey) else ArraySpec(roi=roi)
        return pipeline.request_batch(req)


def array(data: np.ndarray, vs: tuple, offset: tuple | None = None) -> Array:
    offset = offset or (0,) * len(vs)
    roi = Roi(offset, Coordinate(data.shape[-len(vs) :]) * Coordinate(vs))
    return Array(data, ArraySpec(roi=roi, voxel_size=vs))


labels_2d = hnp.arrays(
    np.int64,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=7),
    elements=st.integers(0, 3),
)


# ------------------------------------------------------------------------------------------
# PrepareMalis


@SETTINGS
@given(labels=labels_2d, seed=st.integers(0, 2**16))
def test_malis_components_definition(labels, seed):
    ignore = np.random.default_rng(seed).integers(0, 2, size=labels.shape)
    out = malis_components(labels, ignore)
    assert out.shape == (2,) + labels.shape
    fresh = labels.max() + 1
    for p in itertools.product(*[range(s) for s in labels.shape]):
        assert out[(1,) + p] == labels[p]
        assert out[(0,) + p] == (labels[p] if ignore[p] else fresh)
    np.testing.assert_array_equal(malis_components(labels), np.stack([labels, labels]))


def test_prepare_malis_node_asks_for_ignore_mask():
    labels, ignore, comp = ArrayKey("L_PM"), ArrayKey("I_PM"), ArrayKey("C_PM")
    data = np.arange(24, dtype=np.uint32).reshape(4, 6) % 5
    mask = (np.arange(24).reshape(4, 6) % 3 != 0).astype(np.uint8)
    source = Provider({labels: array(data, (2, 1)), ignore: array(mask, (2, 1))})
    roi = Roi((2, 1), (4, 4))
    batch = run(source + PrepareMalis(labels, comp, ignore_array_key=ignore), {comp: roi})
    assert set(batch.keys()) == {comp}
    got = batch[comp]
    assert got.spec.roi == roi and got.data.dtype == np.uint32
    crop_l, crop_m = data[1:3, 1:5], mask[1:3, 1:5]
    np.testing.assert_array_equal(got.data[1], crop_l)
    np.testing.assert_array_equal(got.data[0], np.where(crop_m == 0, crop_l.max() + 1, crop_l))
    plain = run(source + PrepareMalis(labels, comp), {comp: roi})[comp].data
    np.testing.assert_array_equal(plain, np.stack([crop_l, crop_l]))


def test_prepare_malis_validates():
    with pytest.raises(ValueError, match="PrepareMalis: malis_comp_array_key"):
        PrepareMalis(ArrayKey("L_PM"), "C")


# ------------------------------------------------------------------------------------------
# AddBoundaryDistanceGradients


def reference_distance(labels: np.ndarray, vs: tuple) -> np.ndarray:
    """Distance from each voxel centre to the nearest mid-point of a face between labels."""
    vs_arr = np.asarray(vs, float)
    faces = []
    for p in itertools.product(*[range(s) for s in labels.shape]):
        for axis in range(labels.ndim):
            q = list(p)
            q[axis] += 1
            if q[axis] < labels.shape[axis] and labels[p] != labels[tuple(q)]:
                mid = np.array(p, float)
                mid[axis] += 0.5
                faces.append(mid * vs_arr)
    out = np.zeros(labels.shape, dtype=np.float32)
    if not faces:
        return out
    faces_arr = np.array(faces)
    for p in itertools.product(*[range(s) for s in labels.shape]):
        if labels[p] != 0:
            out[p] = np.min(np.linalg.norm(faces_arr - np.array(p) * vs_arr, axis=1))
    return out


@SETTINGS
@given(labels=labels_2d, vs=st.tuples(st.integers(1, 5), st.integers(1, 5)))
def test_boundary_distance_definition(labels, vs):
    np.testing.assert_allclose(
        boundary_distance(labels, vs), reference_distance(labels, vs), rtol=1e-5, atol=1e-5
    )


@SETTINGS
@given(labels=labels_2d)
def test_face_boundaries_definition(labels):
    faces = face_boundaries(labels)
    assert faces.shape == tuple(2 * s - 1 for s in labels.shape)
    for q in itertools.product(*[range(s) for s in faces.shape]):
        odd = [a for a, v in enumerate(q) if v % 2]
        if len(odd) != 1:
            assert not faces[q]
            continue
        lo = [v // 2 for v in q]
        hi = list(lo)
        hi[odd[0]] += 1
        assert faces[q] == (labels[tuple(lo)] != labels[tuple(hi)])


def test_boundary_gradients_node():
    labels, dist, grad, bound = (ArrayKey(n) for n in ("L_BDG", "D_BDG", "G_BDG", "B_BDG"))
    data = np.ones((1, 12), dtype=np.uint64)
    data[:, 6:] = 2
    data[:, :2] = 0
    vs = (2, 4)
    source = Provider({labels: array(data, vs)})
    node = AddBoundaryDistanceGradients(labels, grad, dist, bound, normalize="l2")
    roi = Roi((0, 0), (2, 48))
    batch = run(source + node, {grad: roi, dist: roi, bound: roi})
    d = batch[dist].data
    np.testing.assert_allclose(d, reference_distance(data, vs))
    g = batch[grad].data
    assert g.shape == (2, 1, 12) and g.dtype == np.float32
    assert not g[0].any()  # the axis of size one
    # l2-normalised x-gradient: away from the boundaries (at x=8 and x=24), 0 in background
    expected = np.sign(np.gradient(d[0], 4.0))
    expected[:2] = 0
    np.testing.assert_allclose(g[1, 0], expected, atol=1e-6)
    b = batch[bound]
    assert b.spec.voxel_size == Coordinate(1, 2) and b.data.shape == (2, 24)
    assert set(np.flatnonzero(b.data[0])) == {3, 11}  # faces after voxels 1 and 5


def test_boundary_gradients_exp_scale_and_validation():
    labels, grad, dist = ArrayKey("L_BDG"), ArrayKey("G_BDG"), ArrayKey("D_BDG")
    data = np.repeat(np.array([1, 1, 1, 2, 2, 2], dtype=np.int32)[None], 3, axis=0)
    source = Provider({labels: array(data, (1, 1))})
    roi = Roi((0, 0), (3, 6))
    plain = run(source + AddBoundaryDistanceGradients(labels, grad, dist), {grad: roi, dist: roi})
    scaled = run(
        source + AddBoundaryDistanceGradients(labels, grad, dist, scale="exp", scale_args=(0.5, 2)),
        {grad: roi},
    )
    factor = 2 * np.exp(-0.5 * plain[dist].data)
    np.testing.assert_allclose(scaled[grad].data, plain[grad].data * factor, rtol=1e-6)
    with pytest.raises(ValueError, match="AddBoundaryDistanceGradients: scale"):
        AddBoundaryDistanceGradients(labels, grad, scale="exp")
    with pytest.raises(ValueError, match="AddBoundaryDistanceGradients: normalize"):
        AddBoundaryDistanceGradients(labels, grad, normalize="l3")


# ------------------------------------------------------------------------------------------
# AddNonsymmetricAffinities


@SETTINGS
@given(
    a=hnp.arrays(np.uint8, (5, 6), elements=st.integers(0, 3)),
    b=hnp.arrays(np.uint8, (5, 6), elements=st.integers(0, 3)),
    offsets=st.lists(st.tuples(st.integers(-1, 1), st.integers(-2, 2)), min_size=1, max_size=3),
)
def test_shifted_conjunction_definition(a, b, offsets):
    out = shifted_conjunction(a, b, offsets, (1, 2))
    assert out.shape == (len(offsets), 3, 2)
    for i, (oz, oy) in enumerate(offsets):
        for z, y in itertools.product(range(3), range(2)):
            assert out[i, z, y] == a[z + 1, y + 2] & b[z + 1 - oz, y + 2 - oy]


def test_nonsymmetric_affinities_node():
    k1, k2, f1, f2 = (ArrayKey(n) for n in ("A1_NSA", "A2_NSA", "F1_NSA", "F2_NSA"))
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2, size=(6, 8)).astype(np.int32)
    b = rng.integers(0, 2, size=(6, 8)).astype(np.int32)
    vs = (2, 1)
    vectors = [(2, 0), (0, -1)]
    source = Provider({k1: array(a, vs), k2: array(b, vs)})
    pipeline = source + AddNonsymmetricAffinities(vectors, k1, k2, f1, f2)
    with gp.build(pipeline):
        assert pipeline.spec[f1].roi == Roi((2, 1), (8, 6))
    roi = Roi((4, 2), (4, 3))
    batch = run(pipeline, {f1: roi, f2: roi})
    for (z, y), i in itertools.product(itertools.product(range(2), range(3)), range(2)):
        pz, py = z + 2, y + 2  # voxel index in the source arrays
        oz, oy = vectors[i][0] // 2, vectors[i][1]
        assert batch[f1].data[i, z, y] == a[pz, py] & b[pz - oz, py - oy]
        assert batch[f2].data[i, z, y] == b[pz, py] & a[pz + oz, py + oy]
    assert batch[f1].attrs["affinity_vectors"] == vectors
    bad = AddNonsymmetricAffinities([(1, 0)], k1, k2, f1, f2)
    with pytest.raises(gp.PipelineSetupError, match="multiple of the voxel size"):
        with gp.build(source + bad):
            pass
    with pytest.raises(ValueError, match="AddNonsymmetricAffinities: affinity_vectors"):
        AddNonsymmetricAffinities([], k1, k2, f1, f2)


# ------------------------------------------------------------------------------------------
# AddGtMaskExclusiveZone


@SETTINGS
@given(
    binary=hnp.arrays(np.uint8, (6, 7), elements=st.sampled_from([0, 0, 0, 1])),
    radius=st.tuples(st.floats(0.5, 6), st.floats(0.5, 6)),
    vs=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
@example(  # a voxel at the radius, up to the EDT's rounding
    binary=np.pad(np.ones((1, 1), np.uint8), ((0, 5), (0, 6))),
    radius=(1.0, 1.9999999999999991),
    vs=(1, 1),
)
def test_exclusive_zone_definition(binary, radius, vs):
    out = exclusive_zone_mask(binary, radius, vs)
    on = np.argwhere(binary != 0)
    for p in itertools.product(range(6), range(7)):
        scaled = ((on - np.array(p)) * np.array(vs) / np.array(radius)) ** 2
        # at the radius (up to a relative 1e-9, as the kernel) counts as inside
        ratio = np.sqrt(np.min(scaled.sum(axis=1))) if len(on) else np.inf
        in_zone = binary[p] == 0 and ratio <= 1 + 1e-9
        assert out[p] == (0 if in_zone else 1)


def test_exclusive_zone_node_does_not_depend_on_the_cut():
    binary, ez = ArrayKey("B_EZ"), ArrayKey("EZ_EZ")
    data = np.zeros((10, 10), dtype=np.uint8)
    data[2, 2] = data[7, 8] = 1
    vs = (2, 2)
    source = Provider({binary: array(data, vs)})
    settings_ = gp.RasterizationSettings(radius=(4, 4))
    node = AddGtMaskExclusiveZone({ez: binary}, rasterization_setting=settings_)
    whole = run(source + node, {ez: Roi((0, 0), (20, 20))})[ez].data
    np.testing.assert_array_equal(whole, exclusive_zone_mask(data, (4, 4), vs))
    part = run(source + node, {ez: Roi((6, 6), (8, 8))})[ez].data
    np.testing.assert_array_equal(part, whole[3:7, 3:7])
    sigma = run(source + AddGtMaskExclusiveZone({ez: binary}, 2), {ez: Roi((0, 0), (20, 20))})
    np.testing.assert_array_equal(sigma[ez].data, exclusive_zone_mask(data, (4, 4), vs))
    with pytest.raises(ValueError, match="AddGtMaskExclusiveZone: gaussian_sigma_for_zone"):
        AddGtMaskExclusiveZone({ez: binary}, gaussian_sigma_for_zone=0)


# ------------------------------------------------------------------------------------------
# AddBlobsFromPoints


def test_place_blobs_definition():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 2, size=(6, 9))
    centres = np.array([[1, 1], [3, 6], [5, 8], [-1, 4]])
    values = [5, 6, 7, 8]
    vs = (2, 1)
    out = place_blobs((6, 9), centres, values, 2.5, vs, mask, np.int64)
    for p in itertools.product(range(6), range(9)):
        want = 0
        for c, value in zip(centres, values):
            inside = np.all(c >= 0) and np.all(c < (6, 9))
            near = np.linalg.norm((np.array(p) - c) * np.array(vs)) <= 2.5
            if inside and near and mask[p] == mask[tuple(c)]:
                want = value  # later points overwrite
        assert out[p] == want


def test_add_blobs_node():
    pre, post = GraphKey("PRE_BL"), GraphKey("POST_BL")
    labels, blobs = ArrayKey("L_BL"), ArrayKey("BLOB_BL")
    roi = Roi((0, 0), (20, 20))
    lab = np.ones((10, 10), dtype=np.uint32)
    lab[:, 5:] = 2
    pre_nodes = [
        GraphNode(1, (5.0, 4.0), attrs={"synapse_id": 11, "partner_ids": [10]}),
        GraphNode(2, (15.0, 15.0), attrs={"synapse_id": 12, "partner_ids": [99]}),
    ]
    graphs = {
        pre: Graph(pre_nodes, [], GraphSpec(roi=roi)),
        post: Graph([GraphNode(10, (6.0, 6.0))], [], GraphSpec(roi=roi)),
    }
    source = Provider({labels: array(lab, (2, 2))}, graphs)
    node = AddBlobsFromPoints(
        {
            "PRE": {
                "points_key": pre,
                "output_array_key": blobs,
                "output_array_dtype": "int64",
                "radius": 4,
                "output_voxel_size": (2, 2),
                "restrictive_mask_key": labels,
                "partner_points": post,
            }
        }
    )
    batch = run(source + node, {blobs: roi})
    got = batch[blobs]
    assert got.data.dtype == np.int64
    # point 2 has no partner in POST: left out; point 1 paints 11 inside object 1 only
    want = place_blobs((10, 10), np.array([[2, 2]]), [11], 4, (2, 2), lab, np.int64)
    np.testing.assert_array_equal(got.data, want)
    assert got.attrs["point_ids"] == [1] and got.attrs["synapse_ids"] == [11]
    with pytest.raises(ValueError, match="AddBlobsFromPoints: blob_settings"):
        AddBlobsFromPoints({"PRE": {"points_key": pre}})


# ------------------------------------------------------------------------------------------
# Hdf5PointsSource


def test_hdf5_points_source(tmp_path):
    path = tmp_path / "cremi.hdf"
    with h5py.File(path, "w") as f:
        f["annotations/ids"] = np.array([1, 2, 3, 4, 9])
        f["annotations/locations"] = np.array(
            [[10, 10, 10], [12, 20, 10], [14, 10, 25], [80, 80, 80], [5, 5, 5]], dtype=float
        )
        f["annotations/types"] = np.array(
            [
                b"presynaptic_site",
                b"postsynaptic_site",
                b"postsynaptic_site",
                b"presynaptic_site",
                b"other",
            ]
        )
        f["annotations/presynaptic_site/partners"] = np.array([[1, 2], [1, 3], [4, 2]])
        f["annotations/comments/target_ids"] = np.array([3])
    pre, post = GraphKey("PRESYN_H5"), GraphKey("POSTSYN_H5")
    provided = Roi((0, 0, 0), (100, 100, 100))
    source = Hdf5PointsSource(
        str(path),
        datasets={pre: "annotations", post: "annotations"},
        rois={pre: provided, post: provided},
    )
    batch = run(source, {pre: Roi((0, 0, 0), (50, 50, 50)), post: Roi((0, 0, 0), (50, 50, 50))})
    pres = {n.id: n for n in batch[pre].nodes}
    posts = {n.id: n for n in batch[post].nodes}
    assert set(pres) == {1} and set(posts) == {2, 3}
    assert pres[1].attrs["partner_ids"] == [2, 3] and pres[1].attrs["synapse_id"] == 0
    assert posts[2].attrs["partner_ids"] == [1, 4]
    assert posts[3].attrs["props"] == {"unsure": True} and posts[2].attrs["props"] == {}
    np.testing.assert_array_equal(posts[3].location, [14, 10, 25])
    with pytest.raises(ValueError, match="Hdf5PointsSource: can not tell"):
        Hdf5PointsSource(
            str(path), {GraphKey("SITES_H5"): "annotations"}, {GraphKey("SITES_H5"): provided}
        )
    missing = Hdf5PointsSource(str(path), {pre: "nothing"}, {pre: provided})
    with pytest.raises(gp.PipelineSetupError, match="nothing/ids"):
        with gp.build(missing):
            pass


def test_contrib_exports_add_vector_map():
    from gunpowder.nodes.add_vector_map import AddVectorMap as direct

    assert AddVectorMap is direct
