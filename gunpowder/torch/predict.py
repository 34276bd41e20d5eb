"""`Predict`: run a torch model on every batch (eval mode, no gradients) and store its outputs."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import torch

from ..batch import Batch
from ..errors import PipelineSetupError
from ..spec import ArrayKey, ArraySpec, ProviderSpec
from .checkpoint import load_checkpoint, model_state
from .model_io import ModelNode


class Predict(ModelNode):
    """Apply `model` to the arrays named in `inputs` and put `outputs` into the batch.

    Args:
        model: the `torch.nn.Module`; put in eval mode, run under `torch.no_grad()`.
        inputs: model argument (int position or str name) → ArrayKey.
        outputs: model output (int index into a returned tuple, str key of a returned dict,
            name of a submodule whose forward output is taken, or a tensor attribute) →
            ArrayKey. An output of exactly the requested size gets the requested ROI, any
            other is centred on the first input's ROI.
        array_specs: specs of the output keys (voxel size, dtype...).
        checkpoint: path of a checkpoint written by `Train` (or of a bare state dict) to load.
        device: torch device; default CUDA when available, else CPU (a CUDA device asked
            for without CUDA falls back to the CPU with a warning).
        spawn_subprocess: accepted for gunpowder 1.x compatibility and ignored: the model
            always runs in this process (use `PreCache` to prepare batches in workers).
            Default False.
        use_gpu: older gunpowder spelling: `use_gpu=N` is `device="cuda:N"`.

    Example::

        pipeline = source + gp.torch.Predict(model, inputs={"input": raw},
                                             outputs={0: pred}, checkpoint="model_checkpoint_5000")
    """

    def __init__(
        self,
        model: torch.nn.Module,
        inputs: Mapping[int | str, ArrayKey],
        outputs: Mapping[int | str, ArrayKey],
        array_specs: Mapping[ArrayKey, ArraySpec] | None = None,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        spawn_subprocess: bool = False,
        use_gpu: int | None = None,
    ) -> None:
        super().__init__(model, inputs, outputs, array_specs, device, use_gpu)
        # 1.x could run the model in a subprocess; here it always runs in this process
        # (PreCache already moves data preparation out of it), so the flag is accepted only.
        self.spawn_subprocess = spawn_subprocess
        self.checkpoint = checkpoint
        self._lock = threading.Lock()

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        spec = super().setup(upstream_spec)
        if self.checkpoint is not None:
            if not os.path.isfile(self.checkpoint):
                raise PipelineSetupError(f"Predict: checkpoint {self.checkpoint} does not exist")
            state = load_checkpoint(self.checkpoint, self.torch_device)
            self.model.load_state_dict(model_state(state))
        self.model.to(self.torch_device)
        self.model.eval()
        return spec

    def process(self, batch: Batch, ctx: Any) -> Batch:
        with self._lock, torch.no_grad():
            self.model.eval()
            _, named = self.run_model(batch)
        tensors = {key: named[name] for name, key in self.outputs.items()}
        self.put_outputs(batch, tensors, ctx)
        return batch
