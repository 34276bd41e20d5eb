"""gunpowder 1.x scripts, written as the 1.x documentation and tutorials write them.

The "simple pipeline" and "writing your own node" tutorials (zarr source, RandomLocation,
SimpleAugment, ElasticAugment, intensity nodes, Stack, MergeProvider, torch Train/Predict,
Scan, ZarrWrite, BatchFilter subclasses), 1.x-style BatchProvider sources, and the value
types' 1.x method names and results (Roi, Coordinate, ArraySpec, BatchRequest, Batch, Array).
Volumes are tiny so the whole file runs in seconds.
"""

import math
import subprocess
import sys

import h5py
import numpy as np
import pytest
import zarr
from scipy import ndimage

import gunpowder as gp
from gunpowder.nodes import ScanCallback

RAW = gp.ArrayKey("API1X_RAW")
GT = gp.ArrayKey("API1X_GT")
PRED = gp.ArrayKey("API1X_PRED")
INVERTED = gp.ArrayKey("API1X_INVERTED")
LABELS = gp.ArrayKey("API1X_LABELS")


@pytest.fixture
def sample(tmp_path):
    """The tutorials' sample data: a channels-first 2D RGB image and a binary ground truth."""
    rng = np.random.default_rng(1961923)
    raw_data = rng.integers(0, 256, (3, 128, 128), dtype=np.uint8)
    gt_data = (ndimage.gaussian_filter(raw_data[0].astype(float), 3) > 127.5)[np.newaxis]
    gt_data = gt_data.astype(np.float32)
    path = str(tmp_path / "sample_data.zarr")
    f = zarr.open(path, mode="w")
    f["raw"] = raw_data
    f["raw"].attrs["resolution"] = (1, 1)
    f["ground_truth"] = gt_data
    f["ground_truth"].attrs["resolution"] = (1, 1)
    return path, raw_data, gt_data


# --------------------------------------------------------------------------------------------
# tutorial: a simple pipeline


def test_tutorial_minimal_pipeline_reads_exactly_the_request(sample):
    path, raw_data, _ = sample
    source = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    pipeline = source
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (64, 64))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert "API1X_RAW" in str(batch) and "API1X_RAW" in str(request)
    assert np.array_equal(batch[RAW].data, raw_data[:, :64, :64])
    assert batch[RAW].spec.roi == request[RAW].roi
    assert batch[RAW].spec.voxel_size == (1, 1)
    assert batch[RAW].spec.interpolatable

    request[RAW] = gp.Roi((50, 30), (64, 64))  # changed offset
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert np.array_equal(batch[RAW].data, raw_data[:, 50:114, 30:94])


def test_tutorial_augmentations_stack_and_multiple_arrays(sample):
    path, raw_data, _ = sample
    source = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    random_location = gp.RandomLocation()
    pipeline = source + random_location
    assert "RandomLocation" in str(pipeline)
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (32, 48))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert batch[RAW].spec.roi == gp.Roi((0, 0), (32, 48))  # a view: the requested ROI
    assert batch[RAW].data.shape == (3, 32, 48)

    simple_augment = gp.SimpleAugment()
    elastic_augment = gp.ElasticAugment(
        control_point_spacing=(16, 16), jitter_sigma=(4.0, 4.0), rotation_interval=(0, math.pi / 2)
    )
    normalize = gp.Normalize(RAW)
    intensity_augment = gp.IntensityAugment(
        RAW, scale_min=0.8, scale_max=1.2, shift_min=-0.2, shift_max=0.2
    )
    noise_augment = gp.NoiseAugment(RAW)
    pipeline = (
        source
        + normalize
        + random_location
        + simple_augment
        + elastic_augment
        + intensity_augment
        + noise_augment
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    data = batch[RAW].data
    assert data.shape == (3, 32, 48) and data.dtype == np.float32  # non-square stays as asked
    assert 0.0 <= data.min() and data.max() <= 1.0  # clipped by default

    stack = gp.Stack(5)
    gt = GT
    source = gp.ZarrSource(
        path,
        {RAW: "raw", gt: "ground_truth"},
        {RAW: gp.ArraySpec(interpolatable=True), gt: gp.ArraySpec(interpolatable=False)},
    )
    request[gt] = gp.Roi((0, 0), (32, 48))
    pipeline = (
        source
        + normalize
        + random_location
        + simple_augment
        + elastic_augment
        + intensity_augment
        + noise_augment
        + stack
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert batch[RAW].data.shape == (5, 3, 32, 48)
    assert batch[gt].data.shape == (5, 1, 32, 48)
    assert set(np.unique(batch[gt].data)) <= {0.0, 1.0}  # not interpolated

    odd_request = request.copy()
    odd_request[gt] = gp.Roi((8, 8), (32, 48))
    with gp.build(pipeline):
        batch = pipeline.request_batch(odd_request)
    assert batch[gt].spec.roi == gp.Roi((8, 8), (32, 48))
    assert batch[RAW].spec.roi == gp.Roi((0, 0), (32, 48))

    # multiple sources, merged
    source_raw = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    source_gt = gp.ZarrSource(path, {gt: "ground_truth"}, {gt: gp.ArraySpec(interpolatable=False)})
    combined_source = (source_raw, source_gt) + gp.MergeProvider()
    pipeline = combined_source + normalize + random_location + simple_augment + stack
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert batch[RAW].data.shape == (5, 3, 32, 48) and batch[gt].data.shape == (5, 1, 32, 48)


def test_tutorial_train_predict_scan_and_zarr_write(sample, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)  # Train writes its checkpoints here
    path, raw_data, _ = sample
    gt = GT
    prediction = PRED
    source = gp.ZarrSource(
        path,
        {RAW: "raw", gt: "ground_truth"},
        {RAW: gp.ArraySpec(interpolatable=True), gt: gp.ArraySpec(interpolatable=False)},
    )
    torch.manual_seed(18)
    # 1x1 kernels: tiles predict exactly what the whole image does
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.Sigmoid())
    loss = torch.nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters())
    train = gp.torch.Train(
        model,
        loss,
        optimizer,
        inputs={"input": RAW},
        loss_inputs={0: prediction, 1: gt},
        outputs={0: prediction},
    )
    pipeline = source + gp.Normalize(RAW) + gp.RandomLocation() + gp.Stack(2) + train
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (32, 32))
    request[gt] = gp.Roi((0, 0), (32, 32))
    request[prediction] = gp.Roi((0, 0), (32, 32))
    with gp.build(pipeline):
        for _ in range(3):
            batch = pipeline.request_batch(request)
    assert batch[prediction].data.shape == (2, 1, 32, 32)
    assert batch[prediction].spec.roi == request[prediction].roi
    assert np.isfinite(batch.loss) and batch.iteration == 3

    model.eval()
    predict = gp.torch.Predict(model, inputs={"input": RAW}, outputs={0: prediction})
    scan_request = gp.BatchRequest()
    scan_request[RAW] = gp.Roi((0, 0), (64, 32))
    scan_request[prediction] = gp.Roi((0, 0), (64, 32))
    scan = gp.Scan(scan_request)
    pipeline = source + gp.Normalize(RAW) + gp.Stack(1) + predict + scan
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (128, 128))
    request[prediction] = gp.Roi((0, 0), (128, 128))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert batch[prediction].data.shape == (1, 1, 128, 128)
    with torch.no_grad():
        direct = model(torch.from_numpy(raw_data[None].astype(np.float32) / 255.0)).numpy()
    np.testing.assert_allclose(batch[prediction].data, direct, atol=1e-5)
    whole = batch[prediction].data

    # an empty request to Scan drives a writer over the whole image
    f = zarr.open(path)
    ds = f.create_array("prediction", shape=(1, 1, 128, 128), dtype="float32")
    ds.attrs["resolution"] = (1, 1)
    ds.attrs["offset"] = (0, 0)
    zarr_write = gp.ZarrWrite(output_filename=path, dataset_names={prediction: "prediction"})
    pipeline = source + gp.Normalize(RAW) + gp.Stack(1) + predict + zarr_write + scan
    with gp.build(pipeline):
        batch = pipeline.request_batch(gp.BatchRequest())
    assert len(batch) == 0
    np.testing.assert_allclose(zarr.open(path, mode="r")["prediction"][:], whole, atol=1e-6)


def test_gp_torch_is_an_attribute_of_gunpowder():
    """1.x scripts write `import gunpowder as gp; gp.torch.Train(...)` without importing
    gunpowder.torch themselves."""
    code = "import gunpowder as gp; print(gp.torch.Train.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Train"


# --------------------------------------------------------------------------------------------
# tutorial: writing your own node


class Print(gp.BatchFilter):
    def __init__(self, prefix, log):
        self.prefix = prefix
        self.log = log

    def prepare(self, request):
        self.log.append((self.prefix, "request", request[RAW].roi))

    def process(self, batch, request):
        self.log.append((self.prefix, "batch", batch[RAW].spec.roi))


class InvertInPlace(gp.BatchFilter):
    def __init__(self, array):
        self.array = array

    def process(self, batch, request):
        data = batch[self.array].data
        batch[self.array].data = 1.0 - data


class Smooth(gp.BatchFilter):
    def __init__(self, array, sigma):
        self.array = array
        self.sigma = sigma
        self.truncate = 4

    def prepare(self, request):
        roi = request[self.array].roi
        context = gp.Coordinate((self.truncate,) * roi.dims) * self.sigma
        context_roi = roi.grow(context, context)
        deps = gp.BatchRequest()
        deps[self.array] = context_roi
        return deps

    def process(self, batch, request):
        data = batch[self.array].data
        batch[self.array].data = ndimage.gaussian_filter(
            data, sigma=(0, self.sigma, self.sigma), truncate=self.truncate
        )
        batch[self.array] = batch[self.array].crop(request[self.array].roi)


class InvertIntensities(gp.BatchFilter):
    def __init__(self, in_array, out_array):
        self.in_array = in_array
        self.out_array = out_array

    def setup(self):
        self.provides(self.out_array, self.spec[self.in_array].copy())

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[self.in_array] = request[self.out_array].copy()
        return deps

    def process(self, batch, request):
        data = 1.0 - batch[self.in_array].data
        spec = batch[self.in_array].spec.copy()
        spec.roi = request[self.out_array].roi.copy()
        batch = gp.Batch()
        batch[self.out_array] = gp.Array(data, spec)
        return batch


def test_tutorial_print_node_sees_requests_up_and_batches_down(sample):
    path, _, _ = sample
    source = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    log = []
    pipeline = (
        source
        + Print("A", log)
        + gp.RandomLocation()
        + Print("B", log)
        + gp.SimpleAugment()
        + Print("C", log)
    )
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (32, 48))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert [(p, w) for p, w, _ in log] == [
        ("C", "request"),
        ("B", "request"),
        ("A", "request"),
        ("A", "batch"),
        ("B", "batch"),
        ("C", "batch"),
    ]
    rois = {(p, w): roi for p, w, roi in log}
    assert rois["C", "request"] == rois["C", "batch"] == request[RAW].roi
    assert rois["B", "request"] == rois["B", "batch"]  # each node undoes its change
    assert rois["A", "request"] == rois["A", "batch"]
    assert gp.Roi((0, 0), (128, 128)).contains(rois["A", "request"])
    assert batch[RAW].spec.roi == request[RAW].roi


def test_tutorial_in_place_filter_and_context_filter(sample):
    path, raw_data, _ = sample
    source = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    normalize = gp.Normalize(RAW)
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((10, 20), (32, 32))
    with gp.build(source + normalize + InvertInPlace(RAW)) as pipeline:
        batch = pipeline.request_batch(request)
    expected = 1.0 - raw_data[:, 10:42, 20:52].astype(np.float32) / 255.0
    np.testing.assert_allclose(batch[RAW].data, expected, atol=1e-6)

    log = []
    pipeline = source + normalize + Print("before", log) + Smooth(RAW, 1.5) + Print("after", log)
    left, right, both = gp.BatchRequest(), gp.BatchRequest(), gp.BatchRequest()
    left[RAW] = gp.Roi((30, 30), (32, 32))
    right[RAW] = gp.Roi((30, 62), (32, 32))
    both[RAW] = gp.Roi((30, 30), (32, 64))
    with gp.build(pipeline):
        batch_left = pipeline.request_batch(left)
        batch_right = pipeline.request_batch(right)
        batch_both = pipeline.request_batch(both)
    # with context, neighbouring requests agree with one big request: no border artefacts
    concatenated = np.concatenate([batch_left[RAW].data, batch_right[RAW].data], axis=2)
    np.testing.assert_allclose(concatenated, batch_both[RAW].data, atol=1e-6)
    # the request sent upstream of Smooth is grown by sigma * truncate = 6 (truncated to int)
    before = [roi for p, w, roi in log if (p, w) == ("before", "request")]
    assert before[0] == gp.Roi((24, 24), (44, 44))
    assert batch_left[RAW].spec.roi == left[RAW].roi


def test_tutorial_new_array_with_overlapping_dependency(sample):
    path, _, _ = sample
    source = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    pipeline = source + gp.Normalize(RAW) + InvertIntensities(RAW, INVERTED)
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (64, 64))
    request[INVERTED] = gp.Roi((0, 0), (64, 64))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    np.testing.assert_allclose(batch[RAW].data, 1.0 - batch[INVERTED].data, atol=1e-6)

    # raw and its dependency overlap only partly: upstream serves both, each as requested
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (64, 64))
    request[INVERTED] = gp.Roi((32, 32), (64, 64))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert batch[RAW].spec.roi == gp.Roi((0, 0), (64, 64))
    assert batch[INVERTED].spec.roi == gp.Roi((32, 32), (64, 64))
    np.testing.assert_allclose(
        batch[RAW].data[:, 32:, 32:], 1.0 - batch[INVERTED].data[:, :32, :32], atol=1e-6
    )


# --------------------------------------------------------------------------------------------
# 1.x-style providers and filters


class ExampleSource(gp.BatchProvider):
    """A 1.x test source: voxel values are their z index; arrays set via `batch.arrays`."""

    def setup(self):
        self.provides(
            RAW,
            gp.ArraySpec(
                roi=gp.Roi((0, 0, 0), (40, 40, 40)),
                voxel_size=gp.Coordinate((4, 2, 2)),
                interpolatable=True,
            ),
        )

    def provide(self, request):
        batch = gp.Batch()
        spec = self.spec[RAW].copy()
        spec.roi = request[RAW].roi
        shape = spec.roi.get_shape() / spec.voxel_size
        z = np.arange(spec.roi.get_begin()[0], spec.roi.get_end()[0], spec.voxel_size[0])
        data = np.broadcast_to(z[:, None, None], shape).astype(np.float32)
        batch.arrays[RAW] = gp.Array(data, spec)
        return batch


class AddOne(gp.BatchFilter):
    """Updates RAW, provides LABELS; skipped when neither is requested."""

    def setup(self):
        self.updates(RAW, self.spec[RAW])
        spec = self.spec[RAW].copy()
        spec.dtype = np.uint8
        self.provides(LABELS, spec)
        self.enable_autoskip()

    def prepare(self, request):
        rois = [request[key].roi for key in (RAW, LABELS) if key in request]
        roi = rois[0]
        for other in rois[1:]:
            roi = roi.union(other)
        deps = gp.BatchRequest()
        deps[RAW] = gp.ArraySpec(roi=roi)
        return deps

    def process(self, batch, request):
        outputs = gp.Batch()
        if RAW in request:
            array = batch[RAW].crop(request[RAW].roi)
            array.data = array.data + 1
            outputs[RAW] = array
        if LABELS in request:
            spec = self.spec[LABELS].copy()
            spec.roi = request[LABELS].roi
            raw = batch[RAW].crop(request[LABELS].roi).data
            outputs[LABELS] = gp.Array(raw.astype(np.uint8), spec)
        return outputs


def test_batch_provider_and_filter_1x():
    request = gp.BatchRequest()
    request.add(RAW, (16, 8, 8))
    assert request[RAW].roi == gp.Roi((0, 0, 0), (16, 8, 8))
    source = ExampleSource()
    with gp.build(source):
        batch = source.request_batch(request)  # a built provider answers directly
    assert batch[RAW].data.shape == (4, 4, 4) and batch[RAW].data[3, 0, 0] == 12
    assert RAW in batch.arrays and batch[RAW].spec.voxel_size == (4, 2, 2)

    pipeline = ExampleSource()
    pipeline += AddOne()
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((8, 0, 0), (8, 4, 4)))
    request[LABELS] = gp.ArraySpec(roi=gp.Roi((4, 0, 0), (8, 4, 4)))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert np.all(batch[RAW].data == np.array([9, 13])[:, None, None])
    assert batch[LABELS].data.dtype == np.uint8
    assert np.all(batch[LABELS].data == np.array([4, 8])[:, None, None])
    assert batch[LABELS].spec.roi == request[LABELS].roi


def test_autoskip_filter_is_skipped_without_its_keys():
    class Fail(gp.BatchFilter):
        def setup(self):
            self.provides(LABELS, self.spec[RAW].copy())
            self.enable_autoskip()

        def process(self, batch, request):
            raise AssertionError("autoskip should have skipped this filter")

    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0, 0), (8, 4, 4))
    with gp.build(ExampleSource() + Fail()) as pipeline:
        batch = pipeline.request_batch(request)
    assert list(batch) == [RAW]


def test_precache_serves_the_requested_batches():
    pipeline = ExampleSource() + gp.RandomLocation() + gp.PreCache(cache_size=4, num_workers=2)
    request = gp.BatchRequest()
    request.add(RAW, (8, 4, 4))
    with gp.build(pipeline):
        batches = [pipeline.request_batch(request) for _ in range(3)]
    for batch in batches:
        assert batch[RAW].spec.roi == request[RAW].roi
        z = batch[RAW].data[:, 0, 0]
        assert z[1] - z[0] == 4 and 0 <= z[0] <= 32


def test_hdf5_source_with_resolution_and_offset(tmp_path):
    path = str(tmp_path / "sample.hdf")
    data = np.arange(10 * 12 * 12, dtype=np.uint8).reshape(10, 12, 12)
    with h5py.File(path, "w") as f:
        f["volumes/raw"] = data
        f["volumes/raw"].attrs["resolution"] = (40, 4, 4)
        f["volumes/raw"].attrs["offset"] = (400, 8, 8)
    source = gp.Hdf5Source(path, datasets={RAW: "volumes/raw"})
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((480, 16, 20), (120, 12, 8))
    with gp.build(source):
        batch = source.request_batch(request)
    assert np.array_equal(batch[RAW].data, data[2:5, 2:5, 3:5])
    with gp.build(source):
        assert source.spec[RAW].roi == gp.Roi((400, 8, 8), (400, 48, 48))
        assert source.spec[RAW].voxel_size == gp.Coordinate((40, 4, 4))


def test_snapshot_and_profiling(sample, tmp_path):
    path, raw_data, _ = sample
    source = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    pipeline = source
    pipeline += gp.Snapshot(
        {RAW: "volumes/raw"}, output_dir=str(tmp_path / "snapshots"), output_filename="{id}.zarr"
    )
    pipeline += gp.PrintProfilingStats(every=100)
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((4, 8), (16, 16))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert batch[RAW].spec.roi == request[RAW].roi
    (name,) = [p.name for p in (tmp_path / "snapshots").iterdir()]
    assert name.endswith(".zarr") and name[: -len(".zarr")].isdigit()
    stored = zarr.open(str(tmp_path / "snapshots" / name), mode="r")
    assert np.array_equal(stored["volumes/raw/s0"][:], raw_data[:, 4:20, 8:24])
    assert tuple(stored["volumes/raw/s0"].attrs["offset"]) == (4, 8)
    assert tuple(stored["volumes/raw/s0"].attrs["resolution"]) == (1, 1)


def test_scan_reports_progress_to_a_callback(sample):
    path, raw_data, _ = sample

    class Count(ScanCallback):
        def __init__(self):
            self.events = []

        def start(self, num_total):
            self.events.append(("start", num_total))

        def update(self, num_processed):
            self.events.append(("update", num_processed))

        def stop(self):
            self.events.append(("stop",))

    reference = gp.BatchRequest()
    reference[RAW] = gp.Roi((0, 0), (64, 64))
    callback = Count()
    pipeline = gp.ZarrSource(path, {RAW: "raw"}) + gp.Scan(reference, progress_callback=callback)
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (128, 128))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert np.array_equal(batch[RAW].data, raw_data)
    assert callback.events == [("start", 4)] + [("update", i) for i in range(1, 5)] + [("stop",)]


def test_augmentations_do_not_make_up_data_beyond_the_provided_roi(sample):
    path, _, _ = sample
    request = gp.BatchRequest(random_seed=3)  # seeded: the draws below must move data
    request[RAW] = gp.Roi((0, 0), (32, 32))  # at the corner: a rotation reads outside
    elastic = gp.ElasticAugment((8, 8), (2.0, 2.0), (math.pi / 4, math.pi / 4))
    source = gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
    with gp.build(source + elastic) as pipeline:
        with pytest.raises(gp.PipelineRequestError, match=r"ElasticAugment.*API1X_RAW.*Pad"):
            pipeline.request_batch(request)
    with gp.build(source + gp.Pad(RAW, None) + elastic) as pipeline:
        batch = pipeline.request_batch(request)
    assert batch[RAW].data.shape == (3, 32, 32)

    shift = gp.ShiftAugment(prob_shift=1.0, sigma=40, shift_axis=0)
    with gp.build(source + shift) as pipeline:
        with pytest.raises(gp.PipelineRequestError, match=r"ShiftAugment.*API1X_RAW.*Pad"):
            pipeline.request_batch(request)
    with gp.build(source + gp.Pad(RAW, None) + shift) as pipeline:
        assert pipeline.request_batch(request)[RAW].data.shape == (3, 32, 32)


def test_resample_takes_the_1x_voxel_size_argument():
    request = gp.BatchRequest()
    request[GT] = gp.Roi((0, 0, 0), (16, 8, 8))
    pipeline = ExampleSource() + gp.Resample(RAW, voxel_size=(8, 4, 4), target=GT)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert batch[GT].spec.voxel_size == (8, 4, 4) and batch[GT].data.shape == (2, 2, 2)


# --------------------------------------------------------------------------------------------
# value types: the 1.x names and results


def test_roi_and_coordinate_are_funlibs_as_in_1x():
    import funlib.geometry

    assert gp.Roi is funlib.geometry.Roi and gp.Coordinate is funlib.geometry.Coordinate
    roi = gp.Roi((0, 0, 0), (10, 20, 30))
    assert (6,) + roi.get_shape() == (6, 10, 20, 30)  # tuple concatenation, as 1.x scripts use
    assert roi.get_begin() == roi.begin == roi.get_offset() == roi.offset == (0, 0, 0)
    assert roi.get_end() == roi.end == (10, 20, 30) and roi.dims == 3 and roi.size == 6000
    assert roi.intersect(gp.Roi((5, 5, 5), (10, 10, 10))) == gp.Roi((5, 5, 5), (5, 10, 10))
    assert gp.Roi((8, 8), (16, 16)) / gp.Coordinate((4, 8)) == gp.Roi((2, 1), (4, 2))


def test_array_keys_and_specs_1x():
    key = gp.ArrayKey("API1X_REGISTERED")
    assert gp.ArrayKeys.API1X_REGISTERED == key == gp.ArrayKey("API1X_REGISTERED")
    assert str(key) == "API1X_REGISTERED" and hash(key) == hash(gp.ArrayKey("API1X_REGISTERED"))

    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)), voxel_size=(2, 2), interpolatable=True)
    assert spec.voxel_size == gp.Coordinate((2, 2)) and spec.dtype is None
    copy = spec.copy()
    copy.roi = gp.Roi((0, 0), (4, 4))
    assert spec.roi == gp.Roi((0, 0), (8, 8)) and copy != spec and spec.copy() == spec

    provider_spec = gp.ProviderSpec()
    provider_spec[RAW] = spec
    provider_spec.array_specs[GT] = gp.ArraySpec(roi=gp.Roi((4, 4), (8, 8)), voxel_size=(4, 4))
    assert GT in provider_spec and len(provider_spec) == 2
    assert provider_spec.get_total_roi() == gp.Roi((0, 0), (12, 12))
    assert provider_spec.get_common_roi() == gp.Roi((4, 4), (4, 4))
    assert provider_spec.get_lcm_voxel_size() == (4, 4)
    assert provider_spec.get_lcm_voxel_size(array_keys=[RAW]) == (2, 2)
    assert dict(provider_spec.items()) == dict(provider_spec.array_specs.items())


def test_batch_request_1x():
    request = gp.BatchRequest()
    request.add(RAW, (20, 40, 40))
    request.add(GT, (10, 20, 20))
    assert request[RAW].roi == gp.Roi((0, 0, 0), (20, 40, 40))
    assert request[GT].roi == gp.Roi((5, 10, 10), (10, 20, 20))  # centred in the largest
    request.add(PRED, (10, 20, 20), voxel_size=(2, 2, 2))
    assert request[PRED].voxel_size == (2, 2, 2)
    request[LABELS] = gp.Roi((0, 0, 0), (2, 2, 2))  # a plain Roi becomes an ArraySpec
    assert isinstance(request[LABELS], gp.ArraySpec)
    del request[LABELS]
    assert LABELS not in request and set(request.array_specs) == {RAW, GT, PRED}

    copy = request.copy()
    copy[RAW].roi = gp.Roi((0, 0, 0), (1, 1, 1))
    assert request[RAW].roi == gp.Roi((0, 0, 0), (20, 40, 40))  # a deep copy
    seeded = gp.BatchRequest(random_seed=42)
    seeded[RAW] = request[RAW].copy()
    plain = gp.BatchRequest()
    plain[RAW] = request[RAW].copy()
    assert seeded == plain and seeded.random_seed == 42

    more = gp.BatchRequest()
    more[RAW] = gp.Roi((10, 30, 30), (20, 20, 20))
    more[LABELS] = gp.Roi((0, 0, 0), (2, 2, 2))
    merged = plain.merge(more)
    assert merged[RAW].roi == gp.Roi((0, 0, 0), (30, 50, 50))  # the union of both
    assert LABELS in merged and LABELS not in plain


def test_array_and_batch_1x():
    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)), voxel_size=(2, 2))
    data = np.arange(16, dtype=np.float32).reshape(4, 4)
    array = gp.Array(data, spec)
    assert array.spec.dtype == np.float32 and array.spec.roi == spec.roi
    cropped = array.crop(gp.Roi((2, 4), (4, 4)))
    assert np.array_equal(cropped.data, data[1:3, 2:4]) and cropped.spec.roi.shape == (4, 4)
    with pytest.raises(AssertionError):  # 1.x asserted shape × voxel size == ROI shape
        gp.Array(np.zeros((3, 4)), spec)

    patch = gp.Array(np.full((2, 2), -1, np.float32), cropped.spec.copy())
    merged = array.merge(patch)
    assert merged.spec.roi == array.spec.roi and np.all(merged.data[1:3, 2:4] == -1)
    assert np.all(array.data[1:3, 2:4] >= 0)  # the input is left as it was
    assert np.all(array.merge(patch, copy_from_self=True).data == data)
    assert patch.merge(array).spec.roi == array.spec.roi

    batch = gp.Batch()
    batch[RAW] = array
    batch.arrays[GT] = cropped  # 1.x sources filled `batch.arrays` directly
    assert GT in batch and set(batch.arrays) == {RAW, GT}
    assert dict(batch.items())[GT] is cropped
    assert batch.get_total_roi() == gp.Roi((0, 0), (8, 8))
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((4, 4), (2, 2))
    small = batch.crop(request)
    assert list(small) == [RAW] and small[RAW].data.shape == (1, 1)
    other = gp.Batch()
    other[RAW] = patch
    assert np.all(batch.merge(other)[RAW].data[1:3, 2:4] == -1)
