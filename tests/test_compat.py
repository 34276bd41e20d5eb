"""A user's gunpowder 1.x BatchProvider/BatchFilter subclasses run unchanged."""

import numpy as np
import pytest

import gunpowder as gp

RAW = gp.ArrayKey("RAW")
OUT = gp.ArrayKey("COMPAT_OUT")
VS = gp.Coordinate(4, 4)


class NumpySource(gp.BatchProvider):
    """A 1.x-style source."""

    def __init__(self, data):
        self.data = data

    def setup(self):
        roi = gp.Roi((0, 0), gp.Coordinate(self.data.shape) * VS)
        self.provides(RAW, gp.ArraySpec(roi=roi, voxel_size=VS, dtype=self.data.dtype))

    def provide(self, request):
        batch = gp.Batch()
        roi = request[RAW].roi
        spec = self.spec[RAW].copy()
        spec.roi = roi
        batch[RAW] = gp.Array(self.data[(roi / VS).to_slices()], spec)
        return batch


class AddOne(gp.BatchFilter):
    """1.x filter with dependencies, returning a batch of outputs."""

    def __init__(self, source, target, context=0):
        self.source = source
        self.target = target
        self.context = context
        self.prepared = 0

    def setup(self):
        self.enable_autoskip()
        self.provides(self.target, self.spec[self.source].copy())

    def prepare(self, request):
        self.prepared += 1
        deps = gp.BatchRequest()
        deps[self.source] = request[self.target].copy()
        deps[self.source].roi = deps[self.source].roi.grow(self.context, self.context)
        return deps

    def process(self, batch, request):
        outputs = gp.Batch()
        spec = request[self.target].copy()
        data = batch[self.source].crop(request[self.target].roi).data + 1
        spec.dtype = data.dtype
        outputs[self.target] = gp.Array(data, spec)
        return outputs


class InPlaceJitter(gp.BatchFilter):
    """Old-style filter: grows the request in place, edits the batch in place, uses np.random."""

    def prepare(self, request):
        request[RAW].roi = request[RAW].roi.grow(VS, VS)

    def process(self, batch, request):
        batch[RAW].data = batch[RAW].data + np.random.randint(0, 1000)
        batch[RAW] = batch[RAW].crop(request[RAW].roi)


def data():
    return np.arange(40 * 40, dtype=np.int64).reshape(40, 40)


def test_batch_filter_with_dependencies_runs_unchanged():
    add = AddOne(RAW, OUT, context=8)
    pipeline = NumpySource(data()) + add
    request = gp.BatchRequest()
    request[OUT] = gp.ArraySpec(roi=gp.Roi((40, 40), (40, 40)))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert list(batch.arrays) == [OUT]
    assert np.array_equal(batch[OUT].data, data()[10:20, 10:20] + 1)
    assert batch[OUT].spec.roi == gp.Roi((40, 40), (40, 40))


def test_autoskip_skips_when_outputs_not_requested():
    add = AddOne(RAW, OUT)
    pipeline = NumpySource(data()) + add
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert add.prepared == 0 and OUT not in batch


def test_in_place_filter_is_reproducible_through_seeds():
    pipeline = NumpySource(data()) + InPlaceJitter()
    request = gp.BatchRequest(random_seed=11)
    request[RAW] = gp.ArraySpec(roi=gp.Roi((40, 40), (20, 20)))
    with gp.build(pipeline):
        a = pipeline.request_batch(request)[RAW]
        b = pipeline.request_batch(request)[RAW]
    assert a.spec.roi == gp.Roi((40, 40), (20, 20))
    assert np.array_equal(a.data, b.data)
    shift = a.data[0, 0] - data()[10, 10]
    assert np.array_equal(a.data, data()[10:15, 10:15] + shift)


def test_prepare_returning_wrong_type_is_reported():
    class Bad(gp.BatchFilter):
        def prepare(self, request):
            return {"not": "a request"}

    pipeline = NumpySource(data()) + Bad()
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)))
    with gp.build(pipeline):
        with pytest.raises(gp.BatchFilterError, match="Bad: prepare"):
            pipeline.request_batch(request)


def test_bare_provider_can_be_built_and_asked():
    source = NumpySource(data())
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)))
    with gp.build(source):
        batch = source.request_batch(request)
    assert batch[RAW].data.shape == (2, 2)


def test_updates_unknown_key_is_setup_error():
    class Updater(gp.BatchFilter):
        def setup(self):
            self.updates(OUT, gp.ArraySpec())

    with pytest.raises(gp.PipelineSetupError, match="Updater: updates COMPAT_OUT"):
        with gp.build(NumpySource(data()) + Updater()):
            pass


def test_seed_era_batch_spec():
    spec = gp.BatchSpec((6, 6), (2, 2), with_gt=True, with_gt_mask=True)
    request = spec.to_request(voxel_size=VS)
    assert set(request) == {gp.ArrayKeys.RAW, gp.ArrayKeys.GT_LABELS, gp.ArrayKeys.GT_MASK}
    assert request[gp.ArrayKeys.RAW].roi.shape == (24, 24)
    assert request[gp.ArrayKeys.GT_LABELS].roi.shape == (8, 8)
    assert request[gp.ArrayKeys.RAW].roi.center == request[gp.ArrayKeys.GT_MASK].roi.center
    source = NumpySource(data())
    with gp.build(source):
        batch = source.request_batch(gp.BatchSpec((6, 6), (6, 6)))
    assert batch[RAW].data.shape == (6, 6)
