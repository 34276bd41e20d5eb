"""Predict: equals calling the model directly (eval mode, no grad), loads Train's checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gunpowder.batch import Array
from gunpowder.errors import PipelineSetupError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.nodes import ArraySource
from gunpowder.pipeline import build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest
from gunpowder.torch.checkpoint import checkpoint_path, save_atomic
from gunpowder.torch.predict import Predict

RAW = ArrayKey("RAW")
PRED = ArrayKey("PRED")
AUX = ArrayKey("AUX")
VOXEL = Coordinate(4, 2, 2)


class TwoHeads(torch.nn.Module):
    """Dropout (differs in train mode) and batch norm; returns a dict of two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 3, 3)
        self.norm = torch.nn.BatchNorm3d(3)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, raw):
        x = self.drop(self.norm(self.conv(raw)))
        return {"affs": torch.sigmoid(x), "mean": x.mean(dim=(2, 3, 4))}


def source(seed: int = 0) -> ArraySource:
    data = np.random.default_rng(seed).random((1, 1, 10, 16, 16), dtype=np.float32)
    roi = Roi((-8, 0, 0), Coordinate(10, 16, 16) * VOXEL)
    return ArraySource(RAW, Array(data, ArraySpec(roi=roi, voxel_size=VOXEL)))


def test_predict_equals_model_and_loads_checkpoint(tmp_path):
    torch.manual_seed(1)
    model = TwoHeads()
    with torch.no_grad():  # non-trivial running statistics, saved as a Train checkpoint
        model.norm.running_mean.fill_(0.3)
        model.norm.running_var.fill_(2.0)
    path = save_atomic(
        {"model_state_dict": model.state_dict(), "iteration": 7}, checkpoint_path(tmp_path / "m", 7)
    )
    fresh = TwoHeads()
    fresh.train()
    node = Predict(
        fresh,
        inputs={"raw": RAW},
        outputs={"affs": PRED, "mean": AUX},
        array_specs={AUX: ArraySpec(nonspatial=True)},
        checkpoint=path,
        device="cpu",
    )
    pipeline = source() + node
    req = BatchRequest(random_seed=0)
    req[RAW] = ArraySpec(roi=Roi((-4, 2, 2), Coordinate(8, 14, 14) * VOXEL))
    req[PRED] = ArraySpec(roi=Roi((0, 4, 4), Coordinate(6, 12, 12) * VOXEL))
    req[AUX] = ArraySpec(nonspatial=True)
    with build(pipeline):
        batch = pipeline.request_batch(req)
        assert not fresh.training
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(batch[RAW].data))
    np.testing.assert_allclose(batch[PRED].data, expected["affs"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(batch[AUX].data, expected["mean"].numpy(), rtol=1e-6)
    assert batch[PRED].spec.roi == req[PRED].roi
    assert batch[PRED].spec.voxel_size == VOXEL
    assert batch[AUX].spec.nonspatial


def test_predict_requests_only_what_it_needs():
    model = torch.nn.Conv3d(1, 1, 3)
    pipeline = source() + Predict(model, inputs={0: RAW}, outputs={0: PRED}, device="cpu")
    req = BatchRequest(random_seed=0)
    req[RAW] = ArraySpec(roi=Roi((-8, 0, 0), Coordinate(5, 5, 5) * VOXEL))
    with build(pipeline):
        batch = pipeline.request_batch(req)  # outputs not requested: not computed into the batch
    assert PRED not in batch and RAW in batch


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    node = Predict(torch.nn.Conv3d(1, 1, 3), {0: RAW}, {0: PRED}, checkpoint=tmp_path / "nope")
    with pytest.raises(PipelineSetupError, match="Predict.*nope"):
        with build(source() + node):
            pass


def test_submodule_outputs_exact_size_placement_and_1x_signature():
    """1.x: a str output naming a submodule is that submodule's forward output (a hook);
    an output of exactly the requested size lies at the requested ROI; positional order
    (model, inputs, outputs, array_specs, checkpoint, device, spawn_subprocess)."""
    torch.manual_seed(0)
    model = TwoHeads().eval()
    predict = Predict(model, {"raw": RAW}, {"conv": AUX, "affs": PRED}, None, None, "cpu", True)
    assert predict.spawn_subprocess is True and predict.device == "cpu"
    src_roi = Roi((-8, 0, 0), Coordinate(10, 16, 16) * VOXEL)
    out_shape = Coordinate(8, 14, 14) * VOXEL
    off_centre = Roi(src_roi.begin, out_shape)  # the size the model returns, not centred
    request = BatchRequest(
        {
            RAW: ArraySpec(roi=src_roi),
            AUX: ArraySpec(roi=off_centre),
            PRED: ArraySpec(roi=off_centre),
        }
    )
    with build(source() + predict) as p:
        batch = p.request_batch(request)
        raw = torch.as_tensor(batch[RAW].data)
    with torch.no_grad():
        conv = model.conv(raw).numpy()
        affs = model(raw)["affs"].numpy()
    np.testing.assert_allclose(batch[AUX].data, conv, rtol=1e-5)
    np.testing.assert_allclose(batch[PRED].data, affs, rtol=1e-5)
    assert batch[AUX].spec.roi == off_centre
    with pytest.raises(Exception, match="neither a key of the model's result, nor a submodule"):
        with build(source() + Predict(model, {"raw": RAW}, {"nothing": AUX})) as p:
            p.request_batch(
                BatchRequest({RAW: ArraySpec(roi=src_roi), AUX: ArraySpec(roi=off_centre)})
            )
