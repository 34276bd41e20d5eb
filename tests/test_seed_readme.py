"""The first (2017) README runs: its "First steps" pipeline trains, its ExampleFilter filters.

The README's code is executed as written, from a copy in tests/data: only the lines the README
leaves to the reader are filled in (the solver's net and loss), `range(1000)` becomes the
number of iterations, and -- for the 50-iteration run -- the two shapes are scaled down
(a full-size batch takes seconds on a CPU; the full-size pipeline runs once, marked slow).
The README's `x =\\n    Call(...)` lines (not valid Python) are joined.
"""

from __future__ import annotations

import contextlib
import os
import re
import textwrap
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import gunpowder as gp
from gunpowder.seed import weighted_bce_loss

torch = pytest.importorskip("torch")

README = Path(__file__).resolve().parent / "data" / "gunpowder-README-2017.md"
VOXEL_SIZE = (40, 4, 4)


def readme_blocks() -> list[str]:
    """The README's python blocks, with `name =\\n    value` joined to `name = value`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [re.sub(r"=[ \t]*\n[ \t]+", "= ", textwrap.dedent(b)) for b in blocks]


def write_example_hdf(path: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """A CREMI-style example.hdf: raw (dark membranes), neuron ids and a mask, 40x4x4 nm."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cell = 12
    drift = (z * 0.6).astype(int)  # neurons drift along x from section to section
    labels = ((y // cell) * 1000 + (x + drift) // cell + 1).astype(np.uint64)
    labels = np.ascontiguousarray(np.broadcast_to(labels, shape))
    edge = np.zeros(shape, dtype=bool)
    edge[:, 1:, :] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :, 1:] |= labels[:, :, 1:] != labels[:, :, :-1]
    raw = np.where(edge, 50.0, 190.0) + rng.normal(0, 15, shape)
    raw = np.clip(raw, 0, 255).astype(np.uint8)
    mask = np.ones(shape, dtype=np.uint8)
    mask[:, :, : shape[2] // 8] = 0  # an unannotated band
    with h5py.File(path, "w") as f:
        for name, data in (
            ("volumes/raw", raw),
            ("volumes/labels/neuron_ids", labels),
            ("volumes/labels/mask", mask),
        ):
            ds = f.create_dataset(name, data=data)
            ds.attrs["resolution"] = VOXEL_SIZE
            ds.attrs["offset"] = (0, 0, 0)
    return path


class SmallUNet(torch.nn.Module):
    """Two-level 3D U-Net, valid convolutions, 3 sigmoid affinity channels.

    Output = input - (8, 16, 16) voxels. `crop_to` first cuts the input's centre to that
    size (a net with a smaller field of view than the README's large RAW).
    """

    def __init__(self, fmaps: int = 4, crop_to: tuple[int, ...] | None = None) -> None:
        super().__init__()
        f = fmaps
        relu = torch.nn.ReLU
        conv = torch.nn.Conv3d
        self.crop_to = crop_to
        self.down0 = torch.nn.Sequential(conv(1, f, 3), relu(), conv(f, f, 3), relu())
        self.pool = torch.nn.MaxPool3d((1, 2, 2))
        self.down1 = torch.nn.Sequential(
            conv(f, 2 * f, (1, 3, 3)), relu(), conv(2 * f, 2 * f, (1, 3, 3)), relu()
        )
        self.up = torch.nn.ConvTranspose3d(2 * f, f, (1, 2, 2), stride=(1, 2, 2))
        self.up0 = torch.nn.Sequential(conv(2 * f, f, 3), relu(), conv(f, f, 3), relu())
        self.head = torch.nn.Sequential(conv(f, 3, 1), torch.nn.Sigmoid())

    @staticmethod
    def centre(x, shape):
        begin = [(s - t) // 2 for s, t in zip(x.shape[2:], shape)]
        return x[(Ellipsis,) + tuple(slice(b, b + t) for b, t in zip(begin, shape))]

    def forward(self, raw):
        if self.crop_to is not None:
            raw = self.centre(raw, self.crop_to)
        d0 = self.down0(raw)
        u = self.up(self.down1(self.pool(d0)))
        return self.head(self.up0(torch.cat([self.centre(d0, u.shape[2:]), u], dim=1)))


def test_small_unet_shapes():
    net = SmallUNet()
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 1, 16, 64, 64)).shape) == (1, 3, 8, 48, 48)
        net.crop_to = (64, 72, 72)
        assert tuple(net(torch.zeros(1, 1, 84, 80, 80)).shape) == (1, 3, 56, 56, 56)


def first_steps(iterations: int, shapes: tuple[tuple, tuple] | None = None) -> str:
    """The README's First steps, the solver filled in, for `iterations` requests."""
    blocks = readme_blocks()
    code = "\n".join(blocks[:5])
    assert "range(1000)" in code and "# set solver parameters" in code
    code = code.replace("range(1000)", f"range({iterations})")
    if shapes is not None:
        for name, shape in zip(("input_shape", "output_shape"), shapes):
            code, n = re.subn(rf"{name}=\([0-9, ]+\)", f"{name}={shape}", code)
            assert n == 1
    fill = (
        "solver_parameters.net = NET\n"
        "solver_parameters.loss = LOSS\n"
        "solver_parameters.base_lr = 0.03\n"
        "solver_parameters.optimizer = 'Adam'\n"
        "solver_parameters.snapshot = 20\n"
        "solver_parameters.snapshot_prefix = 'checkpoints/net'\n"
    )
    code = re.sub(r"(# set solver parameters[^\n]*\n)", lambda m: m.group(1) + fill, code)
    return code


class Recording:
    """`build` for the README's script that also keeps every batch it returns."""

    def __init__(self) -> None:
        self.batches: list[gp.Batch] = []
        self.depth = 0

    @contextlib.contextmanager
    def build(self, pipeline):
        with gp.build(pipeline) as p:
            request_batch = p.request_batch

            def recorded(request):
                self.depth += 1  # BatchSpec.serve_from asks p.request_batch again
                try:
                    batch = request_batch(request)
                finally:
                    self.depth -= 1
                if self.depth == 0:
                    self.batches.append(batch)
                return batch

            p.request_batch = recorded
            yield p


def run_first_steps(tmp_path, iterations, shapes, net, file_shape):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        write_example_hdf(tmp_path / "example.hdf", file_shape)
        recording = Recording()
        code = first_steps(iterations, shapes)
        namespace: dict = {"NET": net, "LOSS": weighted_bce_loss}
        exec("from gunpowder import *\nimport math", namespace)  # what the README assumes
        namespace["build"] = recording.build
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # use_gpu=0 without CUDA; guessed interpolatable
            exec(compile(code, "README-2017", "exec"), namespace)
        return recording.batches, namespace
    finally:
        os.chdir(cwd)


def test_first_steps_trains_and_loss_decreases(tmp_path):
    torch.set_num_threads(1)
    batches, ns = run_first_steps(
        tmp_path, 50, ((12, 52, 52), (4, 24, 24)), SmallUNet(2), file_shape=(24, 110, 110)
    )
    assert len(batches) == 50
    losses = [b.loss for b in batches]
    assert all(isinstance(v, float) and np.isfinite(v) for v in losses)
    assert [b.iteration for b in batches] == list(range(1, 51))
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5]), losses
    batch = batches[-1]
    keys = gp.ArrayKeys
    assert set(batch) == {
        keys.RAW,
        keys.GT_LABELS,
        keys.GT_MASK,
        keys.GT_AFFINITIES,
        keys.PREDICTED_AFFINITIES,
    }
    vs = gp.Coordinate(VOXEL_SIZE)
    out = batch[keys.GT_AFFINITIES].spec.roi
    assert out.shape == gp.Coordinate((4, 24, 24)) * vs
    assert batch[keys.RAW].spec.roi.shape == gp.Coordinate((12, 52, 52)) * vs
    # the prediction is the net's (4, 36, 36) output cropped to the ground truth
    pred = batch[keys.PREDICTED_AFFINITIES]
    assert pred.spec.roi == out and pred.data.shape == (3, 4, 24, 24)
    assert pred.data.min() >= 0 and pred.data.max() <= 1
    # affinities were computed (nothing upstream provides them): nearest neighbours
    labels = batch[keys.GT_LABELS].data
    affs = batch[keys.GT_AFFINITIES].data
    assert affs.shape == (3, 4, 24, 24)
    same_x = (labels[:, :, 1:] == labels[:, :, :-1]).astype(np.uint8)
    np.testing.assert_array_equal(affs[2, :, :, 1:], same_x)
    # snapshots every 20 iterations, and one at the end
    assert ns["train"].iteration == 50
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert {"net_checkpoint_20", "net_checkpoint_40", "net_checkpoint_50"} <= set(names)


@pytest.mark.slow
def test_first_steps_at_the_readme_size(tmp_path):
    torch.set_num_threads(1)
    net = SmallUNet(fmaps=2, crop_to=(64, 72, 72))
    batches, _ = run_first_steps(tmp_path, 1, None, net, file_shape=(90, 440, 440))
    (batch,) = batches
    assert np.isfinite(batch.loss) and batch.iteration == 1
    assert batch[gp.ArrayKeys.RAW].data.shape == (84, 268, 268)
    assert batch[gp.ArrayKeys.GT_AFFINITIES].data.shape == (3, 56, 56, 56)
    assert batch[gp.ArrayKeys.GT_MASK].data.shape == (56, 56, 56)


def test_example_filter_runs_and_changes_nothing(tmp_path):
    ns: dict = {}
    exec("from gunpowder import *\n" + readme_blocks()[5], ns)
    calls = []

    class Counted(ns["ExampleFilter"]):
        def prepare(self, batch_spec):
            calls.append(("prepare", sorted(batch_spec)))
            return super().prepare(batch_spec)

        def process(self, batch):
            calls.append(("process", sorted(batch)))
            return super().process(batch)

    path = write_example_hdf(tmp_path / "example.hdf", (10, 40, 40))

    def source():
        return gp.Hdf5Source(
            path,
            raw_dataset="volumes/raw",
            gt_dataset="volumes/labels/neuron_ids",
            gt_mask_dataset="volumes/labels/mask",
        )

    request = gp.BatchSpec((4, 20, 20), (2, 10, 10), with_gt=True, with_gt_mask=True)
    request = request.to_request(voxel_size=VOXEL_SIZE, random_seed=5)
    # two no-op nodes in the filters' places: the same random draws (seeds follow positions)
    with gp.build(source() + gp.RandomLocation() + gp.PipelineNode() + gp.PipelineNode()) as p:
        plain = p.request_batch(request)
    with gp.build(source() + gp.RandomLocation() + Counted() + ns["ExampleFilter"]()) as p:
        filtered = p.request_batch(request)
        filtered_again = p.request_batch(request)
    keys = sorted(request)
    assert calls[:2] == [("prepare", keys), ("process", keys)]
    assert [c[0] for c in calls] == ["prepare", "process"] * 2
    for key in request:
        np.testing.assert_array_equal(filtered[key].data, plain[key].data)
        np.testing.assert_array_equal(filtered_again[key].data, plain[key].data)
        assert filtered[key].spec.roi == plain[key].spec.roi


# -- the seed-era names one by one ---------------------------------------------------------


def test_hdf5_source_seed_and_1x_forms(tmp_path):
    path = write_example_hdf(tmp_path / "example.hdf", (6, 24, 24))
    keys = gp.ArrayKeys
    seed = gp.Hdf5Source(
        path,
        raw_dataset="volumes/raw",
        gt_dataset="volumes/labels/neuron_ids",
        gt_mask_dataset="volumes/labels/mask",
    )
    positional = gp.Hdf5Source(path, "volumes/raw")  # 2017: raw_dataset second
    legacy = gp.Hdf5Source(path, {keys.RAW: "volumes/raw"}, None, True)
    request = gp.BatchRequest()
    request[keys.RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (80, 40, 40)))
    with gp.build(seed) as p:
        spec = p.spec
        assert set(spec) == {keys.RAW, keys.GT_LABELS, keys.GT_MASK}
        assert spec[keys.GT_MASK].interpolatable is False
        assert spec[keys.GT_LABELS].interpolatable is False
        assert spec[keys.RAW].voxel_size == gp.Coordinate(VOXEL_SIZE)
        a = p.request_batch(request)[keys.RAW].data
    for source in (positional, legacy):
        with gp.build(source) as p:
            np.testing.assert_array_equal(p.request_batch(request)[keys.RAW].data, a)
    over = gp.Hdf5Source(
        path,
        raw_dataset="volumes/raw",
        gt_mask_dataset="volumes/labels/mask",
        array_specs={keys.GT_MASK: gp.ArraySpec(interpolatable=True)},
    )
    with gp.build(over) as p:
        assert p.spec[keys.GT_MASK].interpolatable is True


def test_hdf5_source_bad_arguments():
    with pytest.raises(TypeError, match="not both"):
        gp.Hdf5Source("x.hdf", {gp.ArrayKeys.RAW: "raw"}, raw_dataset="raw")
    with pytest.raises(TypeError, match="raw_dataset="):
        gp.Hdf5Source("x.hdf")
    with pytest.raises(TypeError, match="twice"):
        gp.Hdf5Source("x.hdf", "raw", raw_dataset="raw")
    with pytest.raises(TypeError, match="GT_LABELS"):
        gp.Hdf5Source("x.hdf", raw_dataset="raw", gt_dataset=3)


def test_elastic_augmentation_is_elastic_augment():
    from gunpowder.nodes.elastic_augmentation import ElasticAugmentation

    a = ElasticAugmentation([4, 40, 40], [0, 2, 2], [0, 1.5])
    assert isinstance(a, gp.ElasticAugment) and a.name == "ElasticAugmentation"
    assert a.rotation_interval == (0, 1.5) and a.prob_slip == 0
    with pytest.raises(ValueError, match="rotation_interval"):
        ElasticAugmentation([4, 40, 40], [0, 2, 2], [0])


def test_solver_parameters_record():
    from gunpowder.seed import SolverParameters

    sp = SolverParameters()
    assert sp.optimizer == "Adam" and sp.loss is None and sp.snapshot == 0
    sp.base_lr = 0.5
    sp.lr_policy, sp.gamma, sp.stepsize = "step", 0.1, 10
    assert sp.learning_rate(9) == 0.5 and sp.learning_rate(10) == pytest.approx(0.05)
    sp.lr_policy, sp.power = "inv", 1.0
    assert sp.learning_rate(10) == pytest.approx(0.5 / 2)
    with pytest.raises(AttributeError, match="base_lr"):
        sp.base_rl = 1  # a typo is an error, not a silently ignored field
    with pytest.raises(AttributeError, match="torch.nn.Module"):
        sp.train_net = "net.prototxt"
    sp.lr_policy = "sigmoid"
    with pytest.raises(ValueError, match="lr_policy"):
        sp.learning_rate(0)


def test_weighted_bce_loss_ignores_masked_out():
    pred = torch.tensor([0.9, 0.1, 0.5])
    gt = torch.tensor([1.0, 0.0, 1.0])
    w = torch.tensor([1.0, 1.0, 0.0])
    expected = -(np.log(0.9) + np.log(0.9)) / 2
    assert float(weighted_bce_loss(pred, gt, w)) == pytest.approx(expected, rel=1e-5)
    assert float(weighted_bce_loss(pred, gt, torch.zeros(3))) == 0.0
    with pytest.raises(ValueError, match="Sigmoid"):
        weighted_bce_loss(torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([1.0]))


def test_train_dispatches_to_torch_train():
    from gunpowder.seed import SolverParameters, Train
    from gunpowder.torch.train import Train as TorchTrain

    model = torch.nn.Conv3d(1, 1, 1)
    raw, out = gp.ArrayKey("RAW"), gp.ArrayKey("SEED_OUT")
    t = Train(
        model,
        torch.nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        inputs={0: raw},
        outputs={0: out},
        loss_inputs={0: out, 1: raw},
    )
    assert type(t) is TorchTrain and isinstance(t, Train)
    sp = SolverParameters()
    sp.net = model
    seed = Train(sp, use_gpu=None)
    assert type(seed) is Train and isinstance(seed.optimizer, torch.optim.Adam)
    assert seed.optimizer.param_groups[0]["lr"] == sp.base_lr
    sp.optimizer = "SGD"
    assert isinstance(Train(solver_parameters=sp).optimizer, torch.optim.SGD)
    sp.optimizer = "Lion"
    with pytest.raises(ValueError, match="Lion"):
        Train(sp)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        Train(SolverParameters())


def test_train_without_ground_truth_is_a_clear_error(tmp_path):
    from gunpowder.seed import SolverParameters, Train

    path = write_example_hdf(tmp_path / "example.hdf", (6, 24, 24))
    sp = SolverParameters()
    sp.net = SmallUNet()
    with pytest.raises(gp.PipelineSetupError, match="GT_LABELS"):
        with gp.build(gp.Hdf5Source(path, raw_dataset="volumes/raw") + Train(sp, None)):
            pass
    sp.snapshot_prefix = str(tmp_path / "net")
    pipeline = gp.Hdf5Source(
        path, raw_dataset="volumes/raw", gt_dataset="volumes/labels/neuron_ids"
    )
    with gp.build(pipeline + Train(sp, use_gpu=None)) as p:
        request = gp.BatchRequest()
        request[gp.ArrayKeys.RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (240, 96, 96)))
        with pytest.raises(gp.PipelineRequestError, match="with_gt_affinities"):
            p.request_batch(request)


def test_batch_spec_computes_affinities_without_train(tmp_path):
    path = write_example_hdf(tmp_path / "example.hdf", (10, 40, 40))
    source = gp.Hdf5Source(
        path,
        raw_dataset="volumes/raw",
        gt_dataset="volumes/labels/neuron_ids",
        gt_mask_dataset="volumes/labels/mask",
    )
    spec = gp.BatchSpec(
        (4, 20, 20), (2, 10, 10), with_gt=True, with_gt_mask=True, with_gt_affinities=True
    )
    with gp.build(source + gp.RandomLocation()) as p:
        batch = p.request_batch(spec)
    keys = gp.ArrayKeys
    labels = batch[keys.GT_LABELS].data
    affs = batch[keys.GT_AFFINITIES].data
    assert affs.shape == (3, 2, 10, 10) and batch[keys.GT_AFFINITIES].spec.roi == (
        batch[keys.GT_LABELS].spec.roi
    )
    np.testing.assert_array_equal(affs[1, :, 1:], labels[:, 1:] == labels[:, :-1])
    np.testing.assert_array_equal(affs[0, 1:], labels[1:] == labels[:-1])


def test_train_follows_lr_policy_and_stops_at_max_iter(tmp_path):
    from gunpowder.seed import SolverParameters, Train

    path = write_example_hdf(tmp_path / "example.hdf", (12, 52, 52))
    sp = SolverParameters()
    sp.net = SmallUNet(2)
    sp.optimizer, sp.base_lr, sp.momentum = "SGD", 0.1, 0.0
    sp.lr_policy, sp.gamma, sp.stepsize = "step", 0.5, 1
    sp.max_iter = 2
    sp.snapshot_prefix = str(tmp_path / "net")
    train = Train(sp, use_gpu=None)
    source = gp.Hdf5Source(
        path, raw_dataset="volumes/raw", gt_dataset="volumes/labels/neuron_ids"
    )  # no mask: every affinity counts
    spec = gp.BatchSpec((12, 52, 52), (4, 24, 24), with_gt_affinities=True, with_prediction=True)
    with gp.build(source + train) as p:
        lrs = []
        for _ in range(2):
            batch = p.request_batch(spec.to_request(VOXEL_SIZE))
            lrs.append(train.optimizer.param_groups[0]["lr"])
        assert lrs == [0.1, 0.05] and train.iteration == 2
        assert batch[gp.ArrayKeys.PREDICTED_AFFINITIES].data.shape == (3, 4, 24, 24)
        with pytest.raises(gp.PipelineRequestError, match="max_iter"):
            p.request_batch(spec.to_request(VOXEL_SIZE))
    assert (tmp_path / "net_checkpoint_2").exists()
