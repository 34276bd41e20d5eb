"""The shared part of `MonaiTransform` and `TorchioTransform`: arrays in and out of another
library's transforms, with their randomness drawn from the node's Generator.

MONAI and TorchIO keep their random state in the transform object (MONAI) or in torch's
global generator (TorchIO), neither of which a gunpowder request seed reaches. The adapters
draw one seed per request in `prepare`, and `process` runs a deep copy of the transform
seeded with it (inside `torch.random.fork_rng`, so torch's global generator is left as it
was), so a batch stays a pure function of the pipeline and the request seed.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, is_multiple_of
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ._args import numpy_dtype

# torch's global generator is process-wide: seeding it and running a transform must not
# interleave with another thread doing the same
_TORCH_RNG_LOCK = threading.Lock()

# dtypes torch tensors do not compute with (only store): widened before the transform, cast
# back after
_WIDEN = {
    np.dtype(np.uint16): np.int32,
    np.dtype(np.uint32): np.int64,
    np.dtype(np.uint64): np.int64,
}


def library_of(obj: Any) -> str | None:
    """ "monai" or "torchio" if `obj` is a transform of that library, else None.

    Looks only at the module of the object's class (and its bases), so it needs neither
    library to be importable: `gp.lift` can dispatch on it.
    """
    for cls in type(obj).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root in ("monai", "torchio"):
            return root
    return None


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor or a MONAI MetaTensor."""
    if isinstance(value, np.ndarray):
        return value
    as_tensor = getattr(value, "as_tensor", None)  # MetaTensor -> plain tensor, no metadata
    if callable(as_tensor):
        value = as_tensor()
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def normalize_keys(node: str, keys: Any) -> tuple[dict[str, ArrayKey], bool]:
    """`keys` as {name in the library: ArrayKey} and whether a single array was given.

    A single ArrayKey means an array-based transform (called on the array itself); a list of
    ArrayKeys names each by the key's name ("RAW"); a mapping gives the names explicitly.
    """
    if isinstance(keys, ArrayKey):
        return {str(keys): keys}, True
    if isinstance(keys, Mapping):
        items = list(keys.items())
    elif isinstance(keys, Iterable) and not isinstance(keys, (str, bytes)):
        items = [(str(k), k) for k in keys]
    else:
        raise TypeError(
            f"{node}: keys must be an ArrayKey, a list of ArrayKeys or a mapping "
            f"{{name: ArrayKey}}, got {keys!r}"
        )
    if not items:
        raise ValueError(f"{node}: keys is empty; name at least one ArrayKey")
    out: dict[str, ArrayKey] = {}
    for name, key in items:
        if not isinstance(name, str):
            raise TypeError(f"{node}: the names in keys must be strings, got {name!r}")
        if not isinstance(key, ArrayKey):
            raise TypeError(
                f"{node}: keys[{name!r}] must be an ArrayKey (graphs are not supported), "
                f"got {key!r}"
            )
        out[name] = key
    if len(set(out.values())) != len(out):
        raise ValueError(f"{node}: keys names the same ArrayKey twice: {keys!r}")
    return out, False


class ExternalTransform(Node):
    """Base of the adapters: `run(transform, arrays, seed, sources)` is what a subclass
    provides.

    `arrays` maps the library's names to channel-first numpy arrays (`sources` to the Arrays
    they come from); `run` returns the same names mapped to arrays or tensors.
    """

    library = ""

    def __init__(
        self,
        transform: Any,
        keys: Any,
        voxel_sizes: Mapping[ArrayKey, Any] | None = None,
        dtypes: Mapping[ArrayKey, Any] | None = None,
    ) -> None:
        if not callable(transform):
            raise TypeError(
                f"{type(self).__name__}: transform must be a callable {self.library} transform, "
                f"got {transform!r}"
            )
        self.transform = transform
        self.names, self.single = normalize_keys(self._label(transform), keys)
        self.keys = list(self.names.values())
        self.voxel_sizes = {
            k: Coordinate(v) for k, v in self._checked(voxel_sizes, "voxel_sizes").items()
        }
        self.dtypes = {
            k: numpy_dtype(self.name, f"dtypes[{k}]", v)
            for k, v in self._checked(dtypes, "dtypes").items()
        }

    def _label(self, transform: Any) -> str:
        return f"{type(self).__name__}({type(transform).__name__})"

    @property
    def name(self) -> str:
        return f"{self._label(self.transform)} on {', '.join(str(k) for k in self.keys)}"

    def _checked(self, mapping: Mapping | None, argument: str) -> dict:
        if mapping is None:
            return {}
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{self.name}: {argument} must be a mapping {{ArrayKey: ...}}")
        unknown = [k for k in mapping if k not in self.keys]
        if unknown:
            raise ValueError(
                f"{self.name}: {argument} names {unknown}, which are not among keys {self.keys}"
            )
        return dict(mapping)

    # node protocol -------------------------------------------------------------------
    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, *self.keys)
        spec = upstream_spec.copy()
        for key in self.keys:
            if spec[key].nonspatial:
                raise PipelineSetupError(f"{self.name}: {key} is non-spatial; give spatial arrays")
            out = spec[key].copy()
            if key in self.voxel_sizes:
                vs = self.voxel_sizes[key]
                if len(vs) != out.roi.dims:
                    raise PipelineSetupError(
                        f"{self.name}: voxel_sizes[{key}] = {vs} has {len(vs)} axes, the array "
                        f"{out.roi.dims}"
                    )
                out.voxel_size = vs
            if key in self.dtypes:
                out.dtype = self.dtypes[key]
            spec[key] = out
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        for key in self.keys:
            if key not in upstream:
                continue
            spec = upstream[key]
            up = self.upstream_spec[key]
            if key in self.voxel_sizes and spec.roi is not None:
                if not is_multiple_of(spec.roi.shape, up.voxel_size) or not is_multiple_of(
                    spec.roi.offset, up.voxel_size
                ):
                    raise PipelineRequestError(
                        f"{self.name}: {key} is requested at {spec.roi}, which is not on the "
                        f"upstream voxel grid {up.voxel_size} it is resampled from"
                    )
            upstream[key] = spec.replace(voxel_size=up.voxel_size, dtype=up.dtype)
        return upstream, int(rng.integers(2**31))

    def process(self, batch: Batch, seed: Any) -> Batch:
        present = {name: key for name, key in self.names.items() if key in batch}
        if not present:
            return batch
        inputs = {name: batch[key] for name, key in present.items()}
        arrays = {name: self._to_library(present[name], a) for name, a in inputs.items()}
        transform = copy.deepcopy(self.transform)  # nothing shared between requests
        try:
            results = self.run(transform, arrays, seed, inputs)
        except Exception as e:
            missing = {n: k for n, k in self.names.items() if n not in present}
            if not missing:
                raise
            raise PipelineRequestError(
                f"{self.name}: the transform failed ({type(e).__name__}: {e}) on a batch "
                f"without {', '.join(f'{k} ({n!r})' for n, k in missing.items())}, which the "
                "request does not ask for; request those keys too, or let the transform skip "
                "missing keys (MONAI: allow_missing_keys=True)"
            ) from e
        for name, key in present.items():
            if name not in results:
                raise PipelineRequestError(
                    f"{self.name}: the transform returned no {name!r} (for {key}); it returned "
                    f"{sorted(results)}"
                )
            batch[key] = self._from_library(key, inputs[name], results[name])
        return batch

    def run(
        self,
        transform: Any,
        arrays: dict[str, np.ndarray],
        seed: int,
        sources: dict[str, Array],
    ) -> dict[str, Any]:
        """Apply the (copied) `transform` seeded with `seed` to `arrays`."""
        raise NotImplementedError

    # conversions ---------------------------------------------------------------------
    def _to_library(self, key: ArrayKey, array: Array) -> np.ndarray:
        """Channel-first data with exactly one channel axis, in a dtype torch computes with."""
        data = np.asarray(array.data)
        dims = array.spec.roi.dims
        channels = data.ndim - dims
        if channels == 0:
            data = data[np.newaxis]
        elif channels > 1:
            raise PipelineRequestError(
                f"{self.name}: {key} has {channels} channel axes (shape {data.shape}, "
                f"{dims} spatial); {self.library} transforms take one channel axis"
            )
        wide = _WIDEN.get(data.dtype)
        if wide is not None:
            if data.size and data.dtype == np.uint64 and int(data.max()) >= 2**63:
                raise PipelineRequestError(
                    f"{self.name}: {key} holds uint64 values >= 2**63, which torch's int64 "
                    "can not hold; relabel them first"
                )
            data = data.astype(wide)
        return np.ascontiguousarray(data)

    def _from_library(self, key: ArrayKey, source: Array, value: Any) -> Array:
        """The transform's result as an Array of `key`: shape, dtype and ROI checked."""
        data = to_numpy(value)
        spec = source.spec
        dims = spec.roi.dims
        channels_in = np.ndim(source.data) - dims
        vs = self.voxel_sizes.get(key, spec.voxel_size)
        expected = tuple(spec.roi.shape / vs)
        if data.ndim < dims or tuple(data.shape[-dims:]) != expected:
            hint = (
                f"declare the voxel size it resamples to with voxel_sizes={{{key}: ...}}"
                if key not in self.voxel_sizes
                else f"at voxel_sizes[{key}] = {vs} the ROI {spec.roi} has that shape"
            )
            raise PipelineRequestError(
                f"{self.name}: the transform turned {key} of spatial shape "
                f"{tuple(np.shape(source.data)[-dims:])} into shape {data.shape}, expected "
                f"spatial shape {expected}. Transforms that crop, pad or resize change the ROI, "
                f"which the pipeline can not follow; use a size-preserving variant, or if the "
                f"output covers the same ROI at another resolution, {hint}"
            )
        if channels_in == 0 and data.ndim == dims + 1 and data.shape[0] == 1:
            data = data[0]
        dtype = self.dtypes.get(key, spec.dtype if spec.dtype is not None else source.data.dtype)
        data = self._cast(key, source, data, np.dtype(dtype))
        return Array(
            np.ascontiguousarray(data),
            spec.replace(voxel_size=vs, dtype=data.dtype),
            dict(source.attrs),
        )

    def _cast(self, key: ArrayKey, source: Array, data: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if data.dtype == dtype:
            return data
        original = np.asarray(source.data)
        if (
            np.issubdtype(dtype, np.integer)
            and np.issubdtype(data.dtype, np.floating)
            and original.size
        ):
            # ids passed through floats (MONAI computes in float32) are exact only up to the
            # float's mantissa; beyond it two ids may have merged without a trace
            exact = 2 ** (np.finfo(data.dtype).nmant + 1)
            integral = np.issubdtype(original.dtype, np.integer)
            largest = max(abs(int(original.max())), abs(int(original.min()))) if integral else 0
            if largest > exact:
                raise PipelineRequestError(
                    f"{self.name}: the transform returned {key} as {data.dtype}, which holds "
                    f"integers exactly only up to {exact}, but {key} holds values up to "
                    f"{largest}; relabel it first (e.g. gp.RenumberConnectedComponents)"
                )
            finite = np.isfinite(data)
            if not finite.all() or not np.array_equal(data, np.rint(data)):
                raise PipelineRequestError(
                    f"{self.name}: the transform returned non-integer values for {key} "
                    f"(dtype {source.data.dtype}); use nearest-neighbour interpolation for "
                    f"labels, or declare a float output with dtypes={{{key}: np.float32}}"
                )
        if np.issubdtype(dtype, np.integer) and data.size:
            info = np.iinfo(dtype)
            if data.min() < info.min or data.max() > info.max:
                raise PipelineRequestError(
                    f"{self.name}: the transform returned values in [{data.min()}, "
                    f"{data.max()}] for {key}, outside the range of its dtype {dtype}"
                )
        return data.astype(dtype)


def torch_seeded(seed: int) -> Any:
    """A context manager: torch's CPU generator seeded with `seed`, restored afterwards."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def seeded() -> Any:
        with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    return seeded()
