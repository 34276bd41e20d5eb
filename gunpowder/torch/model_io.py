"""What Train and Predict share: batch arrays → model arguments, model outputs → batch arrays.

An output of exactly the requested size is placed at the requested ROI (as in gunpowder 1.x);
any other output gets a ROI centred on the model's input: a network with valid convolutions
returns less than it was given, and the output covers the middle of the input ROI. Outputs
named by a string may be submodules of the model (1.x): their forward output is caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from .device import resolve_device

# numpy dtypes torch can not hold (or hardly compute with) and what they become
_TORCH_DTYPES = {
    np.dtype(np.uint16): np.int32,
    np.dtype(np.uint32): np.int64,
    np.dtype(np.uint64): np.int64,
}


def to_tensor(data: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor on `device` for numpy `data` (made contiguous; unsigned ints widened)."""
    data = np.asarray(data)
    if data.dtype in _TORCH_DTYPES:
        data = data.astype(_TORCH_DTYPES[data.dtype])
    return torch.as_tensor(np.ascontiguousarray(data), device=device)


def split_arguments(values: Mapping[Any, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Integer keys become positional arguments (in order), string keys keyword arguments."""
    positional = sorted((k, v) for k, v in values.items() if isinstance(k, int))
    if [k for k, _ in positional] != list(range(len(positional))):
        raise ValueError(
            f"positional arguments must be numbered 0..n-1, got {[k for k, _ in positional]}"
        )
    keywords = {k: v for k, v in values.items() if not isinstance(k, int)}
    return [v for _, v in positional], keywords


def select_output(
    model: torch.nn.Module, result: Any, name: int | str, captured: Mapping[str, Any] | None = None
) -> Any:
    """Output `name` of a forward pass: an index into a tuple (0 = a lone tensor), a key of a
    returned dict, the output of the submodule of that name (gunpowder 1.x: caught by a
    forward hook, `captured`), or a tensor attribute of the model set during forward."""
    if isinstance(name, int):
        if isinstance(result, (tuple, list)):
            return result[name]
        if name == 0 and not isinstance(result, Mapping):
            return result
        raise KeyError(f"output {name} asked for, but the model returned {type(result).__name__}")
    if isinstance(result, Mapping) and name in result:
        return result[name]
    if captured is not None and name in captured:
        return captured[name]
    value = getattr(model, name, None)
    if value is not None and not isinstance(value, torch.nn.Module):
        return value
    raise KeyError(
        f"output {name!r} is neither a key of the model's result, nor a submodule that ran in "
        "forward, nor a model attribute"
    )


def submodule(model: torch.nn.Module, name: str) -> torch.nn.Module | None:
    """The submodule `name` (dotted path allowed) of `model`, or None."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def centred_roi(reference: Roi, shape: Coordinate, voxel_size: Coordinate) -> Roi:
    """A ROI of `shape` voxels at `voxel_size`, centred on `reference` and on the voxel grid."""
    world = shape * voxel_size
    begin = reference.begin + (reference.shape - world) // 2
    begin = (begin // voxel_size) * voxel_size
    return Roi(begin, world)


class ModelNode(Node):
    """Base of Train and Predict: maps `inputs` to the model and `outputs` back to the batch.

    `inputs`: model argument (int position or str name) → ArrayKey. `outputs`: model output
    (int index or str name) → ArrayKey. `array_specs`: specs of the output keys (voxel size,
    dtype...), by default derived from the first input.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        inputs: Mapping[int | str, ArrayKey],
        outputs: Mapping[int | str, ArrayKey],
        array_specs: Mapping[ArrayKey, ArraySpec] | None = None,
        device: str | torch.device | None = None,
        use_gpu: int | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"{type(self).__name__}: model must be a torch.nn.Module, got {type(model).__name__}"
            )
        self.model = model
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self.array_specs = dict(array_specs or {})
        self.device = device
        self.use_gpu = use_gpu
        for name, key in {**self.inputs, **self.outputs}.items():
            if not isinstance(key, ArrayKey):
                raise TypeError(
                    f"{type(self).__name__}: {name!r} must map to an ArrayKey, got {key!r}"
                )
        split_arguments(self.inputs)  # checks the numbering early

    # keys this node creates (outputs; Train adds gradients)
    def created_keys(self) -> dict[ArrayKey, int | str]:
        return {key: name for name, key in self.outputs.items()}

    def reference_key(self) -> ArrayKey:
        """The input whose ROI the outputs are centred on: the first spatial input."""
        for key in self.inputs.values():
            spec = self.upstream_spec[key]
            if not spec.nonspatial:
                return key
        return next(iter(self.inputs.values()))

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, *self.inputs.values())
        self.upstream_spec = upstream_spec
        self.torch_device = resolve_device(self.device, self.use_gpu)
        reference = upstream_spec[self.reference_key()]
        spec = upstream_spec.copy()
        for key in self.created_keys():
            given = self.array_specs.get(key)
            out = ArraySpec(
                roi=reference.roi,
                voxel_size=reference.voxel_size,
                interpolatable=True,
                dtype=np.float32,
            )
            if given is not None:
                out = out.update_with(given)
                if given.nonspatial:
                    out = out.replace(roi=None, voxel_size=None)
            spec[key] = out
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[BatchRequest, Any]:
        upstream = request.copy()
        wanted = {}
        for key in self.created_keys():
            if key in upstream:
                wanted[key] = upstream[key]
                del upstream[key]
        for name, key in self.inputs.items():
            if key not in upstream:
                raise PipelineRequestError(
                    f"{self.name}: model input {name!r} comes from {key}, but {key} is not in the "
                    f"request; request it with the input size of the network "
                    f"(requested: {sorted(request)})"
                )
        return upstream, wanted

    def model_arguments(self, batch: Batch) -> tuple[list[Any], dict[str, Any]]:
        tensors = {
            name: to_tensor(batch[key].data, self.torch_device) for name, key in self.inputs.items()
        }
        return split_arguments(tensors)

    def output_array(
        self, batch: Batch, key: ArrayKey, tensor: Any, requested: ArraySpec | None
    ) -> Array:
        """`tensor` as an Array with its ROI centred on the reference input's ROI."""
        data = (
            tensor.detach().cpu().numpy()
            if isinstance(tensor, torch.Tensor)
            else np.asarray(tensor)
        )
        spec = self.spec[key].copy()
        spec.dtype = data.dtype
        if spec.nonspatial:
            return Array(data, spec.replace(roi=None))
        reference = batch[self.reference_key()].spec
        voxel_size = spec.voxel_size or reference.voxel_size
        dims = voxel_size.dims
        if data.ndim < dims:
            raise PipelineRequestError(
                f"{self.name}: output {self.created_keys()[key]!r} for {key} has shape "
                f"{data.shape}, fewer axes than its {dims} spatial dimensions; declare it "
                "nonspatial in array_specs"
            )
        shape = Coordinate(data.shape[-dims:])
        if (
            requested is not None
            and requested.roi is not None
            and requested.roi.shape == shape * voxel_size
        ):
            # exactly the requested size: it is placed at the requested ROI, as gunpowder 1.x
            # does (the request says where the network's output lies)
            return Array(data, spec.replace(roi=requested.roi, voxel_size=voxel_size))
        roi = centred_roi(reference.roi, shape, voxel_size)
        if requested is not None and requested.roi is not None and not roi.contains(requested.roi):
            raise PipelineRequestError(
                f"{self.name}: {key} was requested with ROI {requested.roi}, but the model "
                f"returned {data.shape[-dims:]} voxels, which centred on {self.reference_key()} "
                f"({reference.roi}) cover only {roi}; request a smaller {key} or a larger input"
            )
        return Array(data, spec.replace(roi=roi, voxel_size=voxel_size))

    def put_outputs(
        self, batch: Batch, tensors: Mapping[ArrayKey, Any], wanted: Mapping[ArrayKey, ArraySpec]
    ) -> None:
        """Store the requested outputs in `batch` (unrequested ones are skipped)."""
        for key, tensor in tensors.items():
            if key in wanted:
                batch[key] = self.output_array(batch, key, tensor, wanted[key])

    def run_model(self, batch: Batch) -> tuple[Any, dict[int | str, Any]]:
        """One forward pass; returns the raw result and the outputs by name."""
        args, kwargs = self.model_arguments(batch)
        captured: dict[str, Any] = {}
        hooks = []
        for name in self.outputs:
            module = submodule(self.model, name) if isinstance(name, str) else None
            if module is not None and module is not self.model:
                hooks.append(module.register_forward_hook(_catch(captured, name)))
        try:
            result = self.model(*args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        named = {}
        for name in self.outputs:
            try:
                named[name] = select_output(self.model, result, name, captured)
            except (KeyError, IndexError) as e:
                raise PipelineRequestError(f"{self.name}: {e}") from None
        return result, named


def _catch(store: dict[str, Any], name: str) -> Any:
    """A forward hook storing the module's output under `name` (the last call wins)."""

    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        store[name] = output

    return hook
