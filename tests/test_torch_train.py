"""Train: a tiny learnable task learns, checkpoints are written and resumed, output ROIs."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array, Batch
from gunpowder.errors import PipelineRequestError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.nodes import ArraySource
from gunpowder.pipeline import Source, build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from gunpowder.torch.checkpoint import latest_checkpoint, list_checkpoints, save_atomic
from gunpowder.torch.device import resolve_device
from gunpowder.torch.model_io import centred_roi
from gunpowder.torch.train import Train

RAW = ArrayKey("RAW")
TARGET = ArrayKey("TARGET")
PRED = ArrayKey("PRED")
GRAD = ArrayKey("PRED_GRADIENT")
VOXEL = Coordinate(2, 1, 1)


class NoiseSource(Source):
    """Fresh noise from the node's rng (RAW, shape (1, 1, z, y, x)) and the 3³ box mean of
    it as TARGET: a linear map a single valid convolution can learn exactly."""

    def setup(self, upstream_spec=None) -> ProviderSpec:
        roi = Roi((0, 0, 0), (200, 100, 100))
        return ProviderSpec(
            {
                RAW: ArraySpec(roi=roi, voxel_size=VOXEL, dtype=np.float32, interpolatable=True),
                TARGET: ArraySpec(roi=roi, voxel_size=VOXEL, dtype=np.float32, interpolatable=True),
            }
        )

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        roi = request[RAW].roi
        raw = rng.standard_normal((1, 1) + tuple(roi.shape / VOXEL)).astype(np.float32)
        target = torch.nn.functional.avg_pool3d(torch.from_numpy(raw), 3, stride=1).numpy()
        batch = Batch()
        batch[RAW] = Array(raw, ArraySpec(roi=roi, voxel_size=VOXEL))
        batch[TARGET] = Array(target, ArraySpec(roi=roi.grow(-VOXEL, -VOXEL), voxel_size=VOXEL))
        return batch


def request(seed: int | None = None) -> BatchRequest:
    r = BatchRequest(random_seed=seed)
    r[RAW] = ArraySpec(roi=Roi((20, 10, 10), (20, 12, 12)))
    r[TARGET] = ArraySpec(roi=Roi((22, 11, 11), (16, 10, 10)))
    r[PRED] = ArraySpec(roi=Roi((22, 11, 11), (16, 10, 10)))
    return r


def make_train(tmp_path, **kwargs) -> tuple[Train, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 1, 3)
    node = Train(
        model,
        torch.nn.MSELoss(),
        torch.optim.Adam(model.parameters(), lr=0.05),
        inputs={0: RAW},
        outputs={0: PRED},
        loss_inputs={0: PRED, 1: TARGET},
        checkpoint_basename=str(tmp_path / "model"),
        device="cpu",
        **kwargs,
    )
    return node, model


def test_training_learns_writes_checkpoints_and_resumes(tmp_path):
    node, _ = make_train(tmp_path, save_every=25)
    pipeline = NoiseSource() + node
    losses = []
    with build(pipeline):
        for i in range(60):
            batch = pipeline.request_batch(request(seed=i))
            losses.append(batch.loss)
            assert batch.iteration == i + 1
    assert batch[PRED].spec.roi == request()[PRED].roi
    assert batch[PRED].data.shape == (1, 1, 8, 10, 10)
    assert np.mean(losses[-5:]) < 0.1 * np.mean(losses[:5])
    # every 25 iterations and at teardown
    assert [i for i, _ in list_checkpoints(tmp_path / "model")] == [25, 50, 60]
    log = (tmp_path / "model_log.csv").read_text().splitlines()
    assert log[0] == "iteration,loss,seconds" and len(log) == 61
    assert float(log[-1].split(",")[1]) == pytest.approx(losses[-1])

    # a new run with a fresh model resumes: iteration, weights and optimizer state
    node2, model2 = make_train(tmp_path, save_every=25)
    pipeline2 = NoiseSource() + node2
    with build(pipeline2):
        saved = torch.load(latest_checkpoint(tmp_path / "model")[1], weights_only=True)
        for name, value in model2.state_dict().items():
            assert torch.equal(value, saved["model_state_dict"][name])
        assert node2.optimizer.state_dict()["state"][0]["step"] == 60
        batch = pipeline2.request_batch(request(seed=1000))
    assert batch.iteration == 61
    assert batch.loss < 0.2 * np.mean(losses[:5])
    assert len((tmp_path / "model_log.csv").read_text().splitlines()) == 62
    assert [i for i, _ in list_checkpoints(tmp_path / "model")][-1] == 61


def test_gradients_and_log_dir(tmp_path):
    model = torch.nn.Conv3d(1, 1, 3)
    node = Train(
        model,
        lambda out: out.sum(),
        torch.optim.SGD(model.parameters(), lr=0.0),
        inputs={"input": RAW},
        outputs={0: PRED},
        loss_inputs={"out": 0},
        gradients={0: GRAD},
        checkpoint_basename=str(tmp_path / "ckpt" / "net"),
        log_dir=tmp_path / "logs",
        device="cpu",
    )
    pipeline = NoiseSource() + node
    req = request(seed=3)
    req[GRAD] = req[PRED].copy()
    with build(pipeline):
        batch = pipeline.request_batch(req)
    np.testing.assert_array_equal(batch[GRAD].data, np.ones((1, 1, 8, 10, 10), np.float32))
    assert batch[GRAD].spec.roi == req[GRAD].roi
    assert (tmp_path / "logs" / "loss.csv").exists()
    assert latest_checkpoint(tmp_path / "ckpt" / "net")[0] == 1


def test_missing_input_is_a_clear_error(tmp_path):
    node, _ = make_train(tmp_path)
    pipeline = NoiseSource() + node
    req = request(seed=0)
    del req[RAW]
    with build(pipeline), pytest.raises(PipelineRequestError, match="Train.*RAW"):
        pipeline.request_batch(req)


def test_output_larger_than_model_gives_clear_error(tmp_path):
    node, _ = make_train(tmp_path)
    pipeline = NoiseSource() + node
    req = request(seed=0)
    req[PRED] = ArraySpec(roi=req[RAW].roi)
    with build(pipeline), pytest.raises(PipelineRequestError, match="PRED.*larger input"):
        pipeline.request_batch(req)


@settings(max_examples=15, deadline=None)
@given(
    voxel=st.tuples(*[st.integers(1, 4)] * 3),
    offset=st.tuples(*[st.integers(-5, 5)] * 3),
    shape=st.tuples(*[st.integers(5, 9)] * 3),
    kernel=st.tuples(*[st.integers(1, 4)] * 3),
)
def test_output_roi_is_centred_under_valid_convolutions(voxel, offset, shape, kernel):
    """A valid convolution with kernel k drops (k-1)//2 voxels at the begin of each axis."""
    voxel = Coordinate(voxel)
    in_roi = Roi(Coordinate(offset) * voxel, Coordinate(shape) * voxel)
    data = np.zeros((1, 1) + shape, np.float32)
    model = torch.nn.Conv3d(1, 2, kernel)
    node = Train(
        model,
        lambda p: p.mean(),
        torch.optim.SGD(model.parameters(), lr=0.0),
        inputs={0: RAW},
        outputs={0: PRED},
        loss_inputs={0: PRED},
        save_every=0,
        device="cpu",
        checkpoint_basename=os.path.join(tempfile.gettempdir(), "gp-test-unused"),
        log_dir=None,
    )
    source = ArraySource(RAW, Array(data, ArraySpec(roi=in_roi, voxel_size=voxel)))
    out_shape = Coordinate(shape) - Coordinate(kernel) + 1
    expected = Roi(in_roi.begin + (Coordinate(kernel) - 1) // 2 * voxel, out_shape * voxel)
    assert centred_roi(in_roi, out_shape, voxel) == expected
    req = BatchRequest(random_seed=0)
    req[RAW] = ArraySpec(roi=in_roi)
    req[PRED] = ArraySpec(roi=expected)
    pipeline = source + node
    with tempfile.TemporaryDirectory() as folder:
        node.checkpoint_basename = os.path.join(folder, "model")
        with build(pipeline):
            batch = pipeline.request_batch(req)
    assert batch[PRED].spec.roi == expected
    assert batch[PRED].data.shape == (1, 2) + tuple(out_shape)


def test_save_atomic_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "ckpt"
    save_atomic({"a": torch.zeros(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_atomic({"a": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA"):
            assert resolve_device(use_gpu=0) == torch.device("cpu")
    else:
        assert resolve_device(use_gpu=0) == torch.device("cuda:0")
    with pytest.raises(ValueError):
        resolve_device("cpu", use_gpu=0)


def test_tensorboard_gets_the_loss_when_installed(tmp_path, monkeypatch):
    """With tensorboard importable, log_dir also receives a `loss` scalar per logged step."""
    import sys
    import types

    scalars = []

    class FakeWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def close(self):
            scalars.append("closed")

    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    node, _ = make_train(tmp_path, log_dir=tmp_path / "tb", log_every=2)
    pipeline = NoiseSource() + node
    with build(pipeline):
        losses = [pipeline.request_batch(request(seed=i)).loss for i in range(4)]
    assert scalars == [("loss", losses[1], 2), ("loss", losses[3], 4), "closed"]
    rows = (tmp_path / "tb" / "loss.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["iteration", "2", "4"]
