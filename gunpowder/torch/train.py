"""`Train`: one optimisation step of a torch model per batch, with checkpoints and a loss log."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batch import Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..threads import configure_main_threads
from .checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_atomic
from .model_io import ModelNode, split_arguments, to_tensor
from .training_log import TrainingLog


class Train(ModelNode):
    """Train `model` on every batch that passes: forward, `loss`, backward, `optimizer.step()`.

    Args:
        model: the `torch.nn.Module` to train.
        loss: a callable (e.g. `torch.nn.MSELoss()`) returning a scalar tensor.
        optimizer: a `torch.optim.Optimizer` over the model's parameters.
        inputs: model argument (int position or str name) → ArrayKey.
        outputs: model output (int index into a returned tuple, str key of a returned dict,
            name of a submodule whose forward output is taken (1.x), or a tensor attribute)
            → ArrayKey; requested outputs are put into the batch: one of exactly the
            requested size at the requested ROI, any other centred on the first input's ROI
            (valid convolutions make outputs smaller).
        loss_inputs: loss argument (int position or str name) → ArrayKey (a batch array or
            one of the output keys) or the name of a model output.
        gradients: model output name → ArrayKey to store d(loss)/d(output) in.
        array_specs: specs of output/gradient keys (e.g. another voxel size).
        checkpoint_basename: checkpoints are `{checkpoint_basename}_checkpoint_{iteration}`;
            the newest is loaded at build time to resume (iteration, model, optimizer).
        save_every: write a checkpoint every this many iterations (and at teardown).
        log_dir: directory for TensorBoard (when installed) and the CSV log; without it the CSV
            is `{checkpoint_basename}_log.csv`.
        log_every: log every this many iterations.
        spawn_subprocess: accepted for gunpowder 1.x compatibility and ignored: the model
            always runs in this process (use `PreCache` to prepare batches in workers).
            Default False.
        device: torch device; default CUDA when available, else CPU (a CUDA device asked
            for without CUDA falls back to the CPU with a warning).
        use_gpu: older gunpowder spelling: `use_gpu=N` is `device="cuda:N"`.

    After each step `batch.loss` (float) and `batch.iteration` (1 for the first step) are set.

    Example::

        pipeline = source + gp.RandomLocation() + gp.torch.Train(
            model, torch.nn.MSELoss(), torch.optim.Adam(model.parameters()),
            inputs={"input": raw}, outputs={0: pred}, loss_inputs={0: pred, 1: gt},
            save_every=1000)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss: Any,
        optimizer: torch.optim.Optimizer,
        inputs: Mapping[int | str, ArrayKey],
        outputs: Mapping[int | str, ArrayKey],
        loss_inputs: Mapping[int | str, Any],
        gradients: Mapping[int | str, ArrayKey] | None = None,
        array_specs: Mapping[ArrayKey, ArraySpec] | None = None,
        checkpoint_basename: str = "model",
        save_every: int = 2000,
        log_dir: str | os.PathLike | None = None,
        log_every: int = 1,
        spawn_subprocess: bool = False,
        device: str | torch.device | None = None,
        use_gpu: int | None = None,
    ) -> None:
        super().__init__(model, inputs, outputs, array_specs, device, use_gpu)
        # 1.x could run the model in a subprocess; here it always runs in this process
        # (PreCache already moves data preparation out of it), so the flag is accepted only.
        self.spawn_subprocess = spawn_subprocess
        self.loss = loss
        self.optimizer = optimizer
        self.loss_inputs = dict(loss_inputs)
        self.gradients = dict(gradients or {})
        self.checkpoint_basename = os.fspath(checkpoint_basename)
        self.save_every = int(save_every)
        self.log_dir = log_dir
        self.log_every = int(log_every)
        split_arguments(self.loss_inputs)
        for name in self.gradients:
            if name not in self.outputs:
                raise ValueError(
                    f"Train: gradients asked for output {name!r}, which is not in outputs "
                    f"({list(self.outputs)})"
                )
        self.iteration = 0
        self._saved_iteration = 0
        self._lock = threading.Lock()
        self._log: TrainingLog | None = None

    # keys -------------------------------------------------------------------------------
    def created_keys(self) -> dict[ArrayKey, int | str]:
        keys = super().created_keys()
        keys.update({key: name for name, key in self.gradients.items()})
        return keys

    def _batch_loss_keys(self) -> list[ArrayKey]:
        """Loss inputs that come from the batch (not from the model's outputs)."""
        outputs = set(self.outputs.values())
        return [
            v for v in self.loss_inputs.values() if isinstance(v, ArrayKey) and v not in outputs
        ]

    # life cycle -------------------------------------------------------------------------
    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        for value in self.loss_inputs.values():
            if not isinstance(value, ArrayKey) and value not in self.outputs:
                raise PipelineSetupError(
                    f"Train: loss input {value!r} is neither an ArrayKey nor a model output "
                    f"name ({list(self.outputs)})"
                )
        self.require(upstream_spec, *self._batch_loss_keys())
        spec = super().setup(upstream_spec)
        # as fast as `make demo` without environment variables: torch gets the cores the
        # PreCache workers upstream leave free, and its idle threads do not spin
        configure_main_threads(workers=_upstream_workers(self.upstream_pipelines))
        self.model.to(self.torch_device)
        if isinstance(self.loss, torch.nn.Module):
            self.loss.to(self.torch_device)
        self._resume()
        log_dir = None if self.log_dir is None else Path(self.log_dir)
        csv_path = (
            log_dir / "loss.csv"
            if log_dir is not None
            else Path(f"{self.checkpoint_basename}_log.csv")
        )
        self._log = TrainingLog(csv_path, log_dir)
        return spec

    def _resume(self) -> None:
        found = latest_checkpoint(self.checkpoint_basename)
        if found is None:
            self.iteration = self._saved_iteration = 0
            return
        iteration, path = found
        state = load_checkpoint(path, self.torch_device)
        self.model.load_state_dict(state["model_state_dict"])
        if "optimizer_state_dict" in state:
            self.optimizer.load_state_dict(state["optimizer_state_dict"])
        self.iteration = self._saved_iteration = int(state.get("iteration", iteration))

    def save_checkpoint(self) -> None:
        """Write the current model and optimizer state (atomically)."""
        state = {
            "model_state_dict": self.model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "iteration": self.iteration,
        }
        save_atomic(state, checkpoint_path(self.checkpoint_basename, self.iteration))
        self._saved_iteration = self.iteration

    def teardown(self) -> None:
        with self._lock:
            if self.iteration > self._saved_iteration:
                self.save_checkpoint()
            if self._log is not None:
                self._log.close()
                self._log = None

    # per batch --------------------------------------------------------------------------
    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[BatchRequest, Any]:
        upstream, wanted = super().prepare(request, rng)
        for key in self._batch_loss_keys():
            if key not in upstream:
                raise PipelineRequestError(
                    f"Train: the loss needs {key}, but it is not in the request "
                    f"(requested: {sorted(request)})"
                )
        return upstream, wanted

    def process(self, batch: Batch, ctx: Any) -> Batch:
        with self._lock:
            start = time.perf_counter()
            self.model.train()
            self.optimizer.zero_grad()
            _, named = self.run_model(batch)
            for name in self.gradients:
                if isinstance(named[name], torch.Tensor) and named[name].requires_grad:
                    named[name].retain_grad()
            loss = self._compute_loss(batch, named)
            loss.backward()
            self.optimizer.step()
            self.iteration += 1
            seconds = time.perf_counter() - start
            loss_value = float(loss.detach().cpu())
            if self._log is not None and self.iteration % self.log_every == 0:
                self._log.log(self.iteration, loss_value, seconds)
            if self.save_every > 0 and self.iteration % self.save_every == 0:
                self.save_checkpoint()
            iteration = self.iteration
        tensors = {key: named[name] for name, key in self.outputs.items()}
        for name, key in self.gradients.items():
            grad = named[name].grad if isinstance(named[name], torch.Tensor) else None
            if grad is None:
                raise PipelineRequestError(
                    f"Train: no gradient for output {name!r} ({key}): the loss does not depend on it"
                )
            tensors[key] = grad
        self.put_outputs(batch, tensors, ctx)
        batch.loss = loss_value
        batch.iteration = iteration
        return batch

    def _compute_loss(self, batch: Batch, named: Mapping[int | str, Any]) -> torch.Tensor:
        by_key = {key: named[name] for name, key in self.outputs.items()}
        values = {}
        for arg, source in self.loss_inputs.items():
            if isinstance(source, ArrayKey):
                values[arg] = (
                    by_key[source]
                    if source in by_key
                    else to_tensor(batch[source].data, self.torch_device)
                )
            else:
                values[arg] = named[source]
        args, kwargs = split_arguments(values)
        loss = self.loss(*args, **kwargs)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise PipelineRequestError(
                f"Train: the loss must return a scalar tensor, got "
                f"{type(loss).__name__}{tuple(getattr(loss, 'shape', ()))}"
            )
        return loss


def _upstream_workers(pipelines: Any) -> int:
    """How many worker processes the PreCache nodes upstream run (0 without PreCache)."""
    total, stack = 0, list(pipelines)
    while stack:
        p = stack.pop()
        total += int(getattr(p.node, "num_workers", 0) or 0) if p.node.name == "PreCache" else 0
        stack.extend(p.upstream)
    return total
