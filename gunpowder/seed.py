"""The seed-era (2017) training API: `SolverParameters` and `Train(solver_parameters, use_gpu)`.

The first README trained Caffe nets with `Train(solver_parameters, use_gpu=0)` at the end of
`source + random + augment + train`. Caffe is gone; here the solver's fields have their
meaning in torch terms and the node maps onto `gunpowder.torch.Train`. Called 1.x style
(`Train(model, loss, optimizer, inputs, outputs, loss_inputs, ...)`), `Train` *is*
`gunpowder.torch.Train`. torch is imported only when a `Train` is made.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .batch import Batch
from .errors import PipelineRequestError, PipelineSetupError
from .geometry import Coordinate, Roi
from .node import Node
from .spec import ArrayKey, ArrayKeys, ArraySpec, BatchRequest, ProviderSpec

PREDICTED_AFFINITIES = ArrayKey("PREDICTED_AFFINITIES")

# Caffe's solver types and their torch.optim names
_OPTIMIZERS = {
    "sgd": "SGD",
    "nesterov": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
}
_LR_POLICIES = ("fixed", "step", "exp", "inv", "poly")
# Caffe solver fields without a torch meaning, and what to do instead
_CAFFE_ONLY = {
    "train_net": "set `net` to a torch.nn.Module",
    "net_param": "set `net` to a torch.nn.Module",
    "solver_mode": "choose the device with Train(..., use_gpu=N) (None: CPU)",
    "device_id": "choose the device with Train(..., use_gpu=N)",
    "type": 'set `optimizer` ("SGD", "Adam" or a torch.optim class)',
}


class SolverParameters:
    """The training settings of a seed-era `Train`, set field by field as Caffe's were.

    Fields (set by attribute; an unknown name is an error, so a typo is not silently
    ignored):

    - `net`: a `torch.nn.Module` taking RAW as `(batch, channel, z, y, x)` float32 (integer
      raw scaled to [0, 1] by its dtype's maximum, as `Normalize` would) and returning
      affinities `(batch, channels, z, y, x)`; with valid convolutions the output may be
      smaller than the input (it is centred on it).
    - `loss`: a callable `(prediction, gt_affinities, weights) -> scalar tensor`, all three
      float32 of the same shape `(channels, z, y, x)`; default `weighted_bce_loss`
      (binary cross-entropy weighted by the affinity mask).
    - `optimizer`: "SGD", "Adam" (default), "Nesterov", "RMSProp", "AdaGrad", "AdaDelta",
      a `torch.optim.Optimizer` class (built over `net.parameters()` with the fields below),
      or an optimizer instance (used as it is).
    - `base_lr` (1e-4), `momentum` (0.9; Adam's beta1), `momentum2` (0.999; Adam's beta2),
      `delta` (1e-8; Adam's eps), `weight_decay` (0).
    - `lr_policy`: Caffe's "fixed" (default), "step" (`base_lr * gamma ** (it // stepsize)`),
      "exp" (`gamma ** it`), "inv" (`(1 + gamma * it) ** -power`), "poly"
      (`(1 - it / max_iter) ** power`), with `gamma`, `power`, `stepsize`.
    - `max_iter`: the number of iterations to train; a request beyond it is an error
      (default None: no limit).
    - `snapshot`: write a checkpoint every this many iterations (default 0: only at the end);
      `snapshot_prefix`: checkpoints are `{snapshot_prefix}_checkpoint_{iteration}` (default
      "net"); the newest one is loaded at build time to resume, as `gp.torch.Train` does.
    - `affinity_neighborhood`: the offsets of the affinities computed from GT_LABELS when
      nothing upstream provides GT_AFFINITIES (default None: nearest neighbours,
      `-identity`).

    Example::

        solver_parameters = SolverParameters()
        solver_parameters.net = unet            # a torch.nn.Module ending in a Sigmoid
        solver_parameters.base_lr = 1e-4
        solver_parameters.optimizer = "Adam"
        solver_parameters.snapshot = 1000
        solver_parameters.snapshot_prefix = "net"
    """

    _FIELDS: dict[str, Any] = {
        "net": None,
        "loss": None,
        "optimizer": "Adam",
        "base_lr": 1e-4,
        "momentum": 0.9,
        "momentum2": 0.999,
        "delta": 1e-8,
        "weight_decay": 0.0,
        "lr_policy": "fixed",
        "gamma": 0.0,
        "power": 0.0,
        "stepsize": 0,
        "max_iter": None,
        "snapshot": 0,
        "snapshot_prefix": "net",
        "affinity_neighborhood": None,
    }

    def __init__(self, **fields: Any) -> None:
        for name, value in self._FIELDS.items():
            object.__setattr__(self, name, value)
        for name, value in fields.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._FIELDS:
            hint = _CAFFE_ONLY.get(name)
            if hint is not None:
                raise AttributeError(
                    f"SolverParameters: Caffe's {name!r} has no meaning with torch; {hint}"
                )
            raise AttributeError(
                f"SolverParameters has no field {name!r}; the fields are {sorted(self._FIELDS)}"
            )
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        changed = {
            n: getattr(self, n) for n, d in self._FIELDS.items() if getattr(self, n) is not d
        }
        return "SolverParameters(" + ", ".join(f"{n}={v!r}" for n, v in changed.items()) + ")"

    def learning_rate(self, iteration: int) -> float:
        """The learning rate of Caffe's `lr_policy` at `iteration` (0 for the first step)."""
        base, gamma, power = float(self.base_lr), float(self.gamma), float(self.power)
        policy = self.lr_policy
        if policy == "fixed":
            return base
        if policy == "step":
            if not self.stepsize or self.stepsize <= 0:
                raise ValueError("SolverParameters: lr_policy 'step' needs stepsize > 0")
            return base * gamma ** (iteration // int(self.stepsize))
        if policy == "exp":
            return base * gamma**iteration
        if policy == "inv":
            return base * (1.0 + gamma * iteration) ** (-power)
        if policy == "poly":
            if not self.max_iter:
                raise ValueError("SolverParameters: lr_policy 'poly' needs max_iter")
            return base * max(0.0, 1.0 - iteration / float(self.max_iter)) ** power
        raise ValueError(
            f"SolverParameters: unknown lr_policy {policy!r}; expected one of {_LR_POLICIES}"
        )


def weighted_bce_loss(prediction: Any, target: Any, weights: Any) -> Any:
    """Binary cross-entropy of affinities in [0, 1], weighted (mask), averaged over weights.

    `sum(w * bce(p, t)) / max(sum(w), 1)`: masked-out affinities (w = 0) do not count, and
    a batch without any counted affinity has loss 0.
    """
    import torch

    if prediction.numel() and (prediction.min() < 0 or prediction.max() > 1):
        raise ValueError(
            "the default loss (weighted binary cross-entropy) needs predictions in [0, 1], got "
            f"values in [{float(prediction.min()):.3g}, {float(prediction.max()):.3g}]: end the "
            "net with a Sigmoid or set solver_parameters.loss"
        )
    bce = torch.nn.functional.binary_cross_entropy(prediction, target, reduction="none")
    return (weights * bce).sum() / weights.sum().clamp(min=1.0)


class _TrainMeta(type):
    """`isinstance(x, gp.Train)` also holds for a `gp.torch.Train` (what 1.x-style calls make)."""

    def __instancecheck__(cls, instance: Any) -> bool:
        if type.__instancecheck__(cls, instance):
            return True
        torch_train = sys.modules.get("gunpowder.torch.train")
        return torch_train is not None and isinstance(instance, torch_train.Train)


class _SeedTrainContext(NamedTuple):
    """The seed-era Train's prepare->process context: its inner nodes' contexts and where
    the ground truth lies."""

    affinities: Any
    train: Any
    gt_roi: Roi


class Train(Node, metaclass=_TrainMeta):
    """Train `solver_parameters.net` on every batch: the seed-era (2017) `Train`.

    One iteration per batch, as the first README says: RAW goes into the net, its output is
    the prediction `ArrayKeys.PREDICTED_AFFINITIES` (centred on RAW; cropped to
    GT_AFFINITIES, whose ROI is the output size, when the net uses valid convolutions), the
    loss `solver_parameters.loss(prediction, GT_AFFINITIES, weights)` is minimised and its
    value put in `batch.loss` (and the step in `batch.iteration`). The weights are
    GT_AFFINITIES_MASK, or 1 where there is none. When nothing upstream provides
    GT_AFFINITIES, they are computed here from GT_LABELS (and GT_MASK, if provided, for
    the weights) with `solver_parameters.affinity_neighborhood`. Checkpoints are written every
    `snapshot` iterations to `snapshot_prefix`. Request GT_AFFINITIES (or
    PREDICTED_AFFINITIES) with the network's output size: `BatchSpec(...,
    with_gt_affinities=True)`; the prediction comes back when requested
    (`with_prediction=True`).

    Called 1.x style, `Train(model, loss, optimizer, inputs, outputs, loss_inputs, ...)`
    returns a `gunpowder.torch.Train`.

    Args:
        solver_parameters: a `SolverParameters` (the net, loss, optimizer, learning rate,
            snapshots).
        use_gpu: the CUDA device number (default 0; without CUDA a warning and the CPU);
            None: the CPU.

    Example::

        solver_parameters = gp.SolverParameters()
        solver_parameters.net = unet
        solver_parameters.base_lr = 1e-4
        pipeline = source + gp.RandomLocation() + gp.Train(solver_parameters, use_gpu=0)
        with gp.build(pipeline) as p:
            batch = p.request_batch(gp.BatchSpec((84, 268, 268), (56, 56, 56), with_gt=True,
                                                 with_gt_mask=True, with_gt_affinities=True))
            print(batch.loss)
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:  # pickle, copy
            return super().__new__(cls)
        first = args[0] if args else kwargs.get("solver_parameters", kwargs.get("model"))
        if isinstance(first, SolverParameters) or "solver_parameters" in kwargs:
            return super().__new__(cls)
        from .torch.train import Train as TorchTrain

        return TorchTrain(*args, **kwargs)

    def __init__(self, solver_parameters: SolverParameters, use_gpu: int | None = 0) -> None:
        if not isinstance(solver_parameters, SolverParameters):
            raise TypeError(
                f"Train: solver_parameters must be a SolverParameters, got "
                f"{type(solver_parameters).__name__}"
            )
        import torch

        net = solver_parameters.net
        if not isinstance(net, torch.nn.Module):
            raise TypeError(
                "Train: solver_parameters.net must be a torch.nn.Module (taking RAW as "
                f"(batch, channel, z, y, x)), got {type(net).__name__}"
            )
        loss = solver_parameters.loss if solver_parameters.loss is not None else weighted_bce_loss
        if not callable(loss):
            raise TypeError(
                f"Train: solver_parameters.loss must be callable (prediction, gt_affinities, "
                f"weights), got {type(loss).__name__}"
            )
        solver_parameters.learning_rate(0)  # checks lr_policy early
        self.solver_parameters = solver_parameters
        self.use_gpu = use_gpu
        self.optimizer = _make_optimizer(solver_parameters, net)
        self._model = _SeedNet(net)
        self._loss = _CroppedLoss(loss)
        self._lock = threading.Lock()
        self._train: Any = None
        self._affinities: Any = None
        self._weights: ArrayKey | None = None

    @property
    def iteration(self) -> int:
        """Iterations done so far (also those of a resumed checkpoint)."""
        return 0 if self._train is None else self._train.iteration

    # life cycle -------------------------------------------------------------------------
    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        from .torch.train import Train as TorchTrain

        raw, gt = ArrayKeys.RAW, ArrayKeys.GT_AFFINITIES
        self.require(upstream_spec, raw)
        spec = upstream_spec
        self._affinities = None
        if gt not in spec:
            if ArrayKeys.GT_LABELS not in spec:
                raise PipelineSetupError(
                    f"Train: needs {gt}, or {ArrayKeys.GT_LABELS} to compute them from, but "
                    f"upstream provides only {sorted(spec)}"
                )
            self._affinities = self._affinity_node(spec)
            spec = _setup_inner(self._affinities, spec)
        self._weights = (
            ArrayKeys.GT_AFFINITIES_MASK if ArrayKeys.GT_AFFINITIES_MASK in spec else None
        )
        loss_inputs: dict[int | str, Any] = {0: PREDICTED_AFFINITIES, 1: gt}
        if self._weights is not None:
            loss_inputs[2] = self._weights
        self._model.configure(spec[raw])
        sp = self.solver_parameters
        self._train = TorchTrain(
            self._model,
            self._loss,
            self.optimizer,
            inputs={0: raw},
            outputs={0: PREDICTED_AFFINITIES},
            loss_inputs=loss_inputs,
            checkpoint_basename=sp.snapshot_prefix,
            save_every=int(sp.snapshot or 0),
            device="cpu" if self.use_gpu is None else None,
            use_gpu=self.use_gpu,
        )
        return _setup_inner(self._train, spec)

    def _affinity_node(self, spec: ProviderSpec) -> Any:
        from .nodes.add_affinities import AddAffinities

        labels = spec[ArrayKeys.GT_LABELS]
        dims = labels.voxel_size.dims if labels.voxel_size is not None else 3
        neighborhood = self.solver_parameters.affinity_neighborhood
        if neighborhood is None:
            neighborhood = (-np.eye(dims, dtype=int)).tolist()
        mask = ArrayKeys.GT_MASK if ArrayKeys.GT_MASK in spec else None
        return AddAffinities(
            neighborhood,
            labels=ArrayKeys.GT_LABELS,
            affinities=ArrayKeys.GT_AFFINITIES,
            labels_mask=mask,
            affinities_mask=ArrayKeys.GT_AFFINITIES_MASK,
        )

    def teardown(self) -> None:
        if self._train is not None:
            self._train.teardown()

    # per batch --------------------------------------------------------------------------
    def prepare(
        self, request: BatchRequest, rng: np.random.Generator
    ) -> tuple[BatchRequest, _SeedTrainContext]:
        """Add the targets the net needs to the request; remember the inner nodes' contexts."""
        raw, gt = ArrayKeys.RAW, ArrayKeys.GT_AFFINITIES
        if raw not in request:
            raise PipelineRequestError(
                f"Train: {raw} (the net's input) is not in the request; request it with the "
                f"input size of the network (requested: {sorted(request)})"
            )
        out = request.get(gt) or request.get(PREDICTED_AFFINITIES)
        if out is None or out.roi is None:
            raise PipelineRequestError(
                f"Train: request {gt} (BatchSpec(..., with_gt_affinities=True)) or "
                f"{PREDICTED_AFFINITIES} with the output size of the network; requested only "
                f"{sorted(request)}"
            )
        gt_spec = ArraySpec(roi=out.roi, voxel_size=out.voxel_size)
        inner = request.copy()
        for key in (gt, self._weights, PREDICTED_AFFINITIES):
            if key is not None and key not in inner:
                inner[key] = gt_spec.copy()
        upstream, train_ctx = self._train.prepare(inner, rng)
        affinity_ctx = None
        if self._affinities is not None:
            upstream, affinity_ctx = self._affinities.prepare(upstream, rng)
        return upstream, _SeedTrainContext(affinity_ctx, train_ctx, inner[gt].roi)

    def process(self, batch: Batch, ctx: _SeedTrainContext) -> Batch:
        if self._affinities is not None:
            batch = self._affinities.process(batch, ctx.affinities)
        sp = self.solver_parameters
        with self._lock:
            done = self._train.iteration
            if sp.max_iter is not None and done >= sp.max_iter:
                raise PipelineRequestError(
                    f"Train: solver_parameters.max_iter ({sp.max_iter}) iterations are done; "
                    "raise max_iter to train further"
                )
            lr = sp.learning_rate(done)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self._loss.place(batch[ArrayKeys.RAW].spec, ctx.gt_roi)
            batch = self._train.process(batch, ctx.train)
        return batch


def _setup_inner(node: Any, upstream_spec: ProviderSpec) -> ProviderSpec:
    """Set up a node run inside another one, as the engine would (spec, upstream_spec)."""
    spec = node.setup(upstream_spec)
    node.upstream_spec = upstream_spec
    node.spec = spec
    return spec.copy()


def _make_optimizer(sp: SolverParameters, net: Any) -> Any:
    """The torch optimizer that `sp.optimizer` names, over `net`'s parameters."""
    import torch

    choice = sp.optimizer
    if isinstance(choice, torch.optim.Optimizer):
        return choice
    nesterov = False
    if isinstance(choice, str):
        name = _OPTIMIZERS.get(choice.lower())
        if name is None:
            raise ValueError(
                f"SolverParameters.optimizer: unknown optimizer {choice!r}; expected one of "
                f"{sorted(set(_OPTIMIZERS.values()))}, a torch.optim class or instance"
            )
        nesterov = choice.lower() == "nesterov"
        choice = getattr(torch.optim, name)
    if not (inspect.isclass(choice) and issubclass(choice, torch.optim.Optimizer)):
        raise TypeError(
            "SolverParameters.optimizer must be 'SGD', 'Adam', ... or a torch.optim class or "
            f"instance, got {choice!r}"
        )
    params = inspect.signature(choice.__init__).parameters
    kwargs: dict[str, Any] = {"lr": float(sp.base_lr)}
    if "weight_decay" in params:
        kwargs["weight_decay"] = float(sp.weight_decay)
    if "betas" in params:
        kwargs["betas"] = (float(sp.momentum), float(sp.momentum2))
    elif "momentum" in params:
        kwargs["momentum"] = float(sp.momentum)
    if "eps" in params and "betas" in params:
        kwargs["eps"] = float(sp.delta)
    if nesterov:
        kwargs["nesterov"] = True
    return choice(net.parameters(), **kwargs)


def _seed_net_class() -> type:
    import torch

    class SeedNet(torch.nn.Module):
        """The user's net behind gunpowder.torch.Train: batch arrays in, affinities out.

        RAW `(z, y, x)` (or `(c, z, y, x)`) becomes float32 `(1, c, z, y, x)`, integer raw
        scaled to [0, 1]; the net's `(1, channels, z, y, x)` becomes `(channels, z, y, x)`.
        Its state dict is the net's, so checkpoints load into the bare net.
        """

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net
            self.dims = 3
            self.scale = 1.0

        def configure(self, raw: ArraySpec) -> None:
            self.dims = raw.voxel_size.dims if raw.voxel_size is not None else 3
            dtype = np.dtype(raw.dtype) if raw.dtype is not None else None
            if dtype is not None and dtype.kind in "ui":
                self.scale = 1.0 / float(np.iinfo(dtype).max)
            else:
                self.scale = 1.0

        def forward(self, raw: torch.Tensor) -> torch.Tensor:
            x = raw.to(torch.float32)
            if self.scale != 1.0:
                x = x * self.scale
            while x.dim() < self.dims + 2:
                x = x.unsqueeze(0)
            out = self.net(x)
            if not isinstance(out, torch.Tensor) or out.dim() != self.dims + 2:
                shape = tuple(getattr(out, "shape", ()))
                raise PipelineRequestError(
                    f"Train: solver_parameters.net must return a tensor (batch, channels, "
                    f"{self.dims} spatial axes), got {type(out).__name__} {shape}"
                )
            return out[0]

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:
            return self.net.state_dict(*args, **kwargs)

        def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
            return self.net.load_state_dict(state_dict, *args, **kwargs)

    return SeedNet


def _SeedNet(net: Any) -> Any:  # noqa: N802 (made like a class; torch is imported lazily)
    return _seed_net_class()(net)


class _CroppedLoss:
    """The user's loss on the prediction cropped to GT_AFFINITIES's ROI, all float32.

    `place` (called before each step) says where RAW and GT_AFFINITIES lie; the prediction
    is centred on RAW (as gunpowder.torch.Train places it) and cut to the GT's ROI.
    """

    def __init__(self, loss: Callable) -> None:
        self.loss = loss
        self.raw: ArraySpec | None = None
        self.gt_roi: Roi | None = None

    def place(self, raw: ArraySpec, gt_roi: Roi) -> None:
        self.raw, self.gt_roi = raw, gt_roi

    def __call__(self, prediction: Any, gt: Any, weights: Any = None) -> Any:
        import torch

        from .torch.model_io import centred_roi

        raw, gt_roi = self.raw, self.gt_roi
        assert raw is not None and gt_roi is not None and raw.voxel_size is not None
        vs = raw.voxel_size
        dims = vs.dims
        pred_roi = centred_roi(raw.roi, Coordinate(prediction.shape[-dims:]), vs)
        if not pred_roi.contains(gt_roi):
            raise PipelineRequestError(
                f"Train: the net returned {tuple(prediction.shape[-dims:])} voxels, which "
                f"centred on RAW ({raw.roi}) cover only {pred_roi}, less than GT_AFFINITIES "
                f"({gt_roi}); request a larger RAW or a smaller output"
            )
        begin = (gt_roi.begin - pred_roi.begin) / vs
        index = (Ellipsis,) + tuple(slice(b, b + s) for b, s in zip(begin, gt_roi.shape / vs))
        prediction = prediction[index]
        gt = gt.to(torch.float32)
        weights = torch.ones_like(gt) if weights is None else weights.to(torch.float32)
        if tuple(gt.shape) != tuple(prediction.shape):
            raise PipelineRequestError(
                f"Train: the net predicts {tuple(prediction.shape)} (channels, spatial) for "
                f"GT_AFFINITIES of shape {tuple(gt.shape)}: the net's output channels must be "
                "the affinity neighborhood's offsets"
            )
        return self.loss(prediction, gt, weights)


__all__ = ["PREDICTED_AFFINITIES", "SolverParameters", "Train", "weighted_bce_loss"]
