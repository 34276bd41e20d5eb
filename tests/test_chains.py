"""Random chains of the location, padding, combination and array nodes: a request returns
exactly the requested keys, ROIs, shapes and dtypes; the same seed gives the same batch; and
Pad + RandomLocation never read outside the (padded) data."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.graph import Graph
from gunpowder.nodes import (
    AsType,
    Crop,
    GraphSource,
    IntensityScaleShift,
    MergeProvider,
    Normalize,
    Pad,
    RandomLocation,
    RandomProvider,
    Reject,
    SpecifiedLocation,
    Squeeze,
    Stack,
    Unsqueeze,
)

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("CH_LABELS")
MASK = gp.ArrayKey("CH_MASK")
COPY = gp.ArrayKey("CH_COPY")
SHIFT = gp.ArrayKey("CH_SHIFT")
POINTS = gp.GraphKey("CH_POINTS")
WHICH = gp.ArrayKey("CH_WHICH")

VS_RAW = gp.Coordinate(4, 2, 2)
VS_LAB = gp.Coordinate(4, 4, 4)
OFFSET = gp.Coordinate(8, -4, 12)


def sources(seed, raw_dtype, raw_channels):
    """RAW (4x2x2 voxels), LABELS and MASK (4x4x4) over the same 24^3 world box."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 200, raw_channels + (6, 12, 12)).astype(raw_dtype)
    labels = rng.integers(0, 5, (6, 6, 6)).astype(np.uint64)
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[:, :4] = 1
    roi = gp.Roi(OFFSET, (24, 24, 24))
    make = lambda key, data, vs: gp.ArraySource(  # noqa: E731
        key, gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=vs))
    )
    points = Graph.from_arrays(
        np.array(OFFSET) + rng.uniform(0, 24, (30, 3)), spec=gp.GraphSpec(roi=roi)
    )
    return (
        make(RAW, raw, VS_RAW),
        make(LABELS, labels, VS_LAB),
        make(MASK, mask, VS_LAB),
        GraphSource(POINTS, points),
    )


@st.composite
def chains(draw):
    """A pipeline, the model of what it does to channel axes (key -> channel shape) and
    whether graphs may be requested (not through Stack)."""
    raw_dtype = draw(st.sampled_from([np.uint8, np.float32]))
    raw_channels = draw(st.sampled_from([(), (2,)]))
    trees = []
    for i in range(draw(st.integers(1, 2))):
        trees.append(sources(i, raw_dtype, raw_channels) + MergeProvider())
    pipeline = (
        trees[0] if len(trees) == 1 else tuple(trees) + RandomProvider(random_provider_key=WHICH)
    )
    channels = {RAW: raw_channels, LABELS: (), MASK: ()}
    if len(trees) == 2:
        channels[WHICH] = ()
    if draw(st.booleans()):
        pipeline = pipeline + Crop(LABELS, fraction_negative=draw(st.sampled_from([0, 0.25])))
    location = draw(st.sampled_from(["none", "random", "masked", "specified", "points"]))
    # unbounded padding pins the request in place: no way to reach a point from there
    sizes = [(0, 0, 0), (1, 2, 1)] + ([None] if location != "points" else [])
    for key, vs in ((RAW, VS_RAW), (LABELS, VS_LAB), (POINTS, VS_LAB)):
        if draw(st.booleans()):
            size = draw(st.sampled_from(sizes))
            mode = draw(st.sampled_from(["constant", "edge", "reflect"]))
            size = None if size is None else gp.Coordinate(size) * vs
            pipeline = pipeline + Pad(key, size, value=draw(st.sampled_from([None, 3])), mode=mode)
    if location == "random":
        pipeline = pipeline + RandomLocation(random_shift_key=SHIFT)
        channels[SHIFT] = (3,)
    elif location == "points":
        pipeline = pipeline + RandomLocation(ensure_nonempty=POINTS, random_shift_key=SHIFT)
        channels[SHIFT] = (3,)
    elif location == "masked":
        pipeline = pipeline + RandomLocation(min_masked=0.3, mask=MASK, random_shift_key=SHIFT)
        channels[SHIFT] = (3,)
    elif location == "specified":
        # the one centre where every request drawn below fits, even with Crop and context
        centre = OFFSET + gp.Coordinate(13, 13, 13)
        pipeline = pipeline + SpecifiedLocation([centre], choose_randomly=draw(st.booleans()))
    if location in ("random", "masked", "points") and draw(st.booleans()):
        pipeline = pipeline + Reject(MASK, min_masked=0.3)
    graphs = True
    for step in draw(st.lists(st.integers(0, 6), max_size=5)):
        if step == 0:
            pipeline = pipeline + Normalize(RAW)
        elif step == 1:
            pipeline = pipeline + IntensityScaleShift(RAW, 2, 1)
        elif step == 2:
            pipeline = pipeline + AsType(LABELS, np.int32)
        elif step == 3 and COPY not in channels:
            pipeline = pipeline + AsType(RAW, np.float64, target=COPY)
            channels[COPY] = channels[RAW]
        elif step == 4:
            pipeline = pipeline + Unsqueeze([RAW])
            channels[RAW] = (1,) + channels[RAW]
        elif step == 5 and channels[RAW][:1] == (1,):
            pipeline = pipeline + Squeeze([RAW])
            channels[RAW] = channels[RAW][1:]
        elif step == 6:
            pipeline = pipeline + Stack(2)
            channels = {k: (2,) + c for k, c in channels.items()}
            graphs = False
    return pipeline, channels, graphs


def draw_request(data, spec, keys):
    """A request for a random subset of `keys`: one box for all (RAW perhaps with context
    around it), placed where every requested key is provided."""
    keys = data.draw(st.lists(st.sampled_from(sorted(keys)), min_size=1, unique=True))
    size = gp.Coordinate(data.draw(st.tuples(*[st.integers(1, 3)] * 3))) * VS_LAB
    context = VS_LAB * data.draw(st.integers(0, 1))
    boxes = {}
    for key in keys:
        if not getattr(spec[key], "nonspatial", False):
            box = gp.Roi((0, 0, 0), size)
            boxes[key] = box.grow(context, context) if key == RAW else box
    begin = []
    for d in range(3):
        lo, hi = OFFSET[d] - 40, OFFSET[d] + 64
        for key, box in boxes.items():
            have = spec[key].roi
            if have.begin[d] is not None:
                lo = max(lo, have.begin[d] - box.begin[d])
                hi = min(hi, have.end[d] - box.end[d])
        lo = -(-lo // VS_LAB[d])
        hi = hi // VS_LAB[d]
        begin.append(data.draw(st.integers(lo, max(lo, hi))) * VS_LAB[d])
    request = gp.BatchRequest()
    for key in keys:
        if isinstance(key, gp.GraphKey):
            request[key] = gp.GraphSpec(roi=boxes[key].shift(gp.Coordinate(begin)))
        elif key in boxes:
            request[key] = gp.ArraySpec(roi=boxes[key].shift(gp.Coordinate(begin)))
        else:
            request[key] = gp.ArraySpec(nonspatial=True)
    return request


@settings(max_examples=100)
@given(chains(), st.data(), st.integers(0, 2**32))
def test_any_chain_returns_exactly_what_was_requested(chain, data, seed):
    pipeline, channels, graphs = chain
    with gp.build(pipeline):
        spec = pipeline.spec
        assert set(channels) <= set(spec)
        keys = list(channels) + ([POINTS] if graphs else [])
        request = draw_request(data, spec, keys).with_seed(seed)
        batch = pipeline.request_batch(request)
        again = pipeline.request_batch(request)
    assert set(batch) == set(request)
    for key, wanted in request.items():
        if isinstance(key, gp.GraphKey):
            graph = batch[key]
            assert graph.spec.roi == wanted.roi
            assert all(wanted.roi.contains(tuple(np.floor(p))) for p in graph.locations)
            np.testing.assert_array_equal(graph.locations, again[key].locations)
            continue
        array = batch[key]
        assert array.data.dtype == spec[key].dtype == array.spec.dtype, key
        np.testing.assert_array_equal(array.data, again[key].data)
        if wanted.nonspatial:
            continue
        assert array.spec.roi == wanted.roi, key
        vs = spec[key].voxel_size
        assert array.spec.voxel_size == vs
        assert array.data.shape == channels[key] + tuple(wanted.roi.shape / vs), key


@settings(max_examples=40)
@given(st.data())
def test_pad_and_random_location_never_leave_the_padded_data(data):
    raw_src, lab_src, *_ = sources(0, np.float32, ())
    pads = {}
    pipeline = (raw_src, lab_src) + MergeProvider()
    for key, vs in ((RAW, VS_RAW), (LABELS, VS_LAB)):
        pad = gp.Coordinate(data.draw(st.tuples(*[st.integers(0, 3)] * 3))) * vs
        pads[key] = pad
        pipeline = pipeline + Pad(key, pad, value=-1 if key == RAW else 9)
    pipeline = pipeline + RandomLocation(random_shift_key=SHIFT)
    keys = data.draw(st.sampled_from([[RAW], [LABELS], [RAW, LABELS]]))
    data_roi = gp.Roi(OFFSET, (24, 24, 24))
    padded = {k: data_roi.grow(p, p) for k, p in pads.items()}
    # room for a box on the common grid (4, 4, 4) inside every requested key's padded ROI
    room = padded[keys[0]].snap_to_grid(VS_LAB, mode="shrink")
    for k in keys[1:]:
        room = room.intersect(padded[k].snap_to_grid(VS_LAB, mode="shrink"))
    limit = min(room.shape)
    size = gp.Coordinate(data.draw(st.integers(1, limit // 4)) for _ in range(3)) * VS_LAB
    request = gp.BatchRequest(random_seed=data.draw(st.integers(0, 2**32)))
    where = gp.Coordinate(data.draw(st.tuples(*[st.integers(-9, 9)] * 3))) * VS_LAB
    for key in keys:
        request[key] = gp.ArraySpec(roi=gp.Roi(where, size))
    request[SHIFT] = gp.ArraySpec(nonspatial=True)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    shift = gp.Coordinate(batch[SHIFT].data)
    for key, src, value in ((RAW, raw_src, -1), (LABELS, lab_src, 9)):
        if key not in keys:
            continue
        moved = request[key].roi.shift(shift)
        assert padded[key].contains(moved), (key, moved, padded[key])
        vs = src.array.spec.voxel_size
        pad_vox = pads[key] / vs
        reference = np.pad(
            src.array.data, [(p, p) for p in pad_vox], mode="constant", constant_values=value
        )
        rel = (moved - padded[key].offset) / vs
        np.testing.assert_array_equal(batch[key].data, reference[rel.to_slices()])
