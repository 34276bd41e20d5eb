"""DefectAugment (missing, low-contrast, artifact, fold) and ShiftAugment (slips and shifts)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_elastic_augment import Arrays

import gunpowder as gp
from gunpowder.errors import PipelineSetupError
from gunpowder.graph import Graph
from gunpowder.nodes import DefectAugment, ShiftAugment
from gunpowder.pipeline import check_request, node_rng

RAW, LABELS = gp.ArrayKey("DEF_RAW"), gp.ArrayKey("DEF_LABELS")
ART, ART_MASK = gp.ArrayKey("DEF_ART"), gp.ArrayKey("DEF_ART_MASK")
POINTS = gp.GraphKey("DEF_POINTS")
VS = gp.Coordinate(40, 4, 4)


def array(data, voxel_size=VS, offset=(0, 0, 0), interpolatable=True):
    vs = gp.Coordinate(voxel_size)
    roi = gp.Roi(gp.Coordinate(offset) * vs, gp.Coordinate(data.shape[-3:]) * vs)
    return gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=interpolatable))


def run(node, arrays, seed=0, rois=None):
    request = gp.BatchRequest(random_seed=seed)
    for key, a in arrays.items():
        request[key] = gp.ArraySpec(roi=(rois or {}).get(key, a.spec.roi))
    with gp.build(Arrays(arrays) + node) as pipeline:
        return pipeline.request_batch(request)


def raw_data(seed, shape=(30, 16, 16)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@settings(max_examples=15)
@given(st.integers(0, 2**31))
def test_each_section_is_untouched_missing_or_low_contrast(seed):
    data = raw_data(seed)
    node = DefectAugment(RAW, prob_missing=0.3, prob_low_contrast=0.3, contrast_scale=0.2)
    out = run(node, {RAW: array(data)}, seed)[RAW].data
    kinds = []
    for a, b in zip(data, out):
        if np.array_equal(a, b):
            kinds.append("same")
        elif not b.any():
            kinds.append("missing")
        else:
            np.testing.assert_allclose(b, a.mean() + (a - a.mean()) * 0.2, atol=1e-6)
            kinds.append("low")
    assert out.dtype == np.float32 and out.shape == data.shape
    for kind in ("same", "missing", "low"):
        assert 0 < kinds.count(kind) < 25


def test_artifacts_are_blended_from_their_source():
    data = raw_data(1, (6, 16, 16))
    artifacts = Arrays(
        {
            ART: array(np.full((10, 40, 40), 0.8, np.float32)),
            ART_MASK: array(np.full((10, 40, 40), 0.25, np.float32)),
        }
    )
    node = DefectAugment(
        RAW,
        0,
        0,
        prob_artifact=1.0,
        artifact_source=artifacts,
        artifacts=ART,
        artifacts_mask=ART_MASK,
    )
    out = run(node, {RAW: array(data)})[RAW].data
    np.testing.assert_allclose(out, data * 0.75 + 0.8 * 0.25, atol=1e-6)
    with pytest.raises(PipelineSetupError, match="artifact_source"):
        run(DefectAugment(RAW, 0, 0, prob_artifact=0.5), {RAW: array(data)})
    with pytest.raises(PipelineSetupError, match="does not provide"):
        bad = DefectAugment(
            RAW, 0, 0, 0.5, 0, artifact_source=artifacts, artifacts=ART, artifacts_mask=RAW
        )
        run(bad, {RAW: array(data)})


@settings(max_examples=10)
@given(st.integers(0, 2**31), st.integers(1, 6))
def test_folds_move_content_and_draw_a_line(seed, strength):
    levels = np.arange(1, 9, dtype=np.float32)[:, None, None] * np.ones((8, 30, 30), np.float32)
    ramp = levels + np.arange(30, dtype=np.float32)[None, None, :] * 0.01
    roi = gp.Roi((0, 20, 20), (320, 80, 80))  # sections 0..7, a 20x20 window with context
    node = DefectAugment(RAW, 0, 0, 0, prob_deform=1.0, deformation_strength=strength)
    out = run(node, {RAW: array(ramp)}, seed, {RAW: roi})[RAW].data
    assert out.shape == (8, 20, 20)
    for z, section in enumerate(out):
        assert (section == 0).sum() >= 10  # the fold line
        values = section[section != 0]
        assert np.all(np.abs(values - (z + 1)) < 0.5)  # content of the same section only
    # near the data's edge the missing context is padded, not an error
    edge = run(node, {RAW: array(ramp)}, seed)[RAW].data
    assert edge.shape == ramp.shape


def test_defect_probability_and_arguments():
    data = raw_data(2, (10, 8, 8))
    out = run(DefectAugment(RAW, 1.0, 0, p=0.0), {RAW: array(data)})[RAW].data
    np.testing.assert_array_equal(out, data)
    assert not run(DefectAugment(RAW, 1.0, 0), {RAW: array(data)})[RAW].data.any()
    out = run(DefectAugment(RAW, 1.0, 0, axis=2), {RAW: array(data)})[RAW].data
    assert not out.any()
    with pytest.raises(ValueError, match="sum to at most 1"):
        DefectAugment(RAW, 0.6, 0.6)


@settings(max_examples=15)
@given(st.integers(0, 2**31), st.sampled_from([(4, 4, 4), (4, 8, 8)]))
def test_shift_moves_whole_sections_alike_in_all_arrays(seed, label_voxel_size):
    shape = (12, 100, 100)  # world -200..200 in-plane: room for accumulated shifts
    ids = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    fine = array(ids, (4, 4, 4), offset=(0, -50, -50), interpolatable=False)
    coarse_shape = (12, 400 // label_voxel_size[1], 400 // label_voxel_size[2])
    coarse_ids = np.arange(np.prod(coarse_shape), dtype=np.int64).reshape(coarse_shape)
    coarse = array(coarse_ids, label_voxel_size, interpolatable=False)
    coarse.spec.roi = gp.Roi((0, -200, -200), (48, 400, 400))
    rois = {RAW: gp.Roi((0, -32, -32), (48, 64, 64)), LABELS: gp.Roi((0, -32, -32), (48, 64, 64))}
    node = ShiftAugment(prob_slip=0.2, prob_shift=0.2, sigma=12, shift_axis=0)
    batch = run(node, {RAW: fine, LABELS: coarse}, seed, rois)
    offsets = {}
    for key, source in ((RAW, fine), (LABELS, coarse)):
        out = batch[key]
        vs = np.array(out.spec.voxel_size)
        assert out.spec.roi == rois[key]
        for z, section in enumerate(out.data):
            zz, y, x = np.unravel_index(section, source.data.shape)
            assert (zz == z).all()
            assert (np.diff(y, axis=0) == 1).all() and (np.diff(x, axis=1) == 1).all()
            world = np.array(source.spec.roi.offset)[1:] + np.array([y[0, 0], x[0, 0]]) * vs[1:]
            offsets.setdefault(key, []).append(tuple(world - np.array(rois[key].offset)[1:]))
    assert offsets[RAW] == offsets[LABELS]
    assert all(
        o[0] % label_voxel_size[1] == 0 and o[1] % label_voxel_size[2] == 0 for o in offsets[RAW]
    )


def test_shift_moves_points_with_their_section():
    shape = (10, 30, 30)
    source = array(np.zeros(shape, np.float32), (4, 4, 4))
    roi = gp.Roi((0, 20, 20), (40, 80, 80))
    locations = np.array([[z * 4 + 2, 60.0, 60.0] for z in range(10)])

    class WithPoints(Arrays):
        def setup(self, upstream_spec=None):
            spec = super().setup()
            spec[POINTS] = gp.GraphSpec(roi=source.spec.roi)
            return spec

        def provide(self, request, rng):
            batch = super().provide(gp.BatchRequest({RAW: request[RAW]}), rng)
            r = request[POINTS].roi
            batch[POINTS] = Graph.from_arrays(locations, spec=gp.GraphSpec(roi=r)).crop(r)
            return batch

    node = ShiftAugment(prob_shift=0.5, sigma=8)
    request = gp.BatchRequest(random_seed=4)
    request[RAW] = gp.ArraySpec(roi=roi)
    request[POINTS] = gp.GraphSpec(roi=roi)
    # shifted sections read raw beyond the data: Pad provides it (ShiftAugment never makes it up)
    with gp.build(WithPoints({RAW: source}) + gp.Pad(RAW, None) + node) as pipeline:
        batch = pipeline.request_batch(request)
        # the draws the engine made: the node's own Generator for seed 4 at the output end
        _, (shifts, *_rest) = node.prepare(check_request(node, request), node_rng(4, ()))
    graph = batch[POINTS]
    assert graph.spec.roi == roi and shifts.any()
    for node_id, location in zip(graph.node_ids, graph.locations):
        z = int(node_id)
        np.testing.assert_allclose(location[1:], locations[z, 1:] + shifts[z, 1:])
    out = run(ShiftAugment(prob_shift=1.0, sigma=8, p=0.0), {RAW: source})[RAW].data
    assert out.shape == shape
