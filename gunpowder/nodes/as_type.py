from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ._args import numpy_dtype
from ._array_filter import _as_upstream, cast


class AsType(Node):
    """Cast `source` to `target_dtype`, in place or into a new key `target` (same ROI and spec).

    For dtypes a later node or a network needs (e.g. int64 labels for a loss, uint8 for
    storage); values are converted with numpy's `astype` (no scaling: see Normalize). Floats
    holding NaN, inf or values outside the range of an integer target dtype are an error
    naming the node and key (numpy would make up integers for them).

    Args:
        source: the ArrayKey to read.
        target_dtype: the new dtype (required, here or as `dtype`).
        target: optional new ArrayKey to create with the cast copy; it must not already be
            provided upstream. Default None: `source` itself is cast.
        dtype: alias of `target_dtype` (give one of the two).

    Example::

        pipeline += gp.AsType(gt_labels, np.int64)
        pipeline += gp.AsType(raw, np.float32, target=raw_float)
    """

    def __init__(
        self,
        source: ArrayKey,
        target_dtype: Any = None,
        target: ArrayKey | None = None,
        dtype: Any = None,
    ) -> None:
        node = f"AsType({source})"
        if (target_dtype is None) == (dtype is None):
            raise TypeError(f"{node}: give the new dtype once, as target_dtype")
        if not isinstance(source, ArrayKey):
            raise TypeError(f"{node}: source must be an ArrayKey, got {source!r}")
        if target is not None and not isinstance(target, ArrayKey):
            raise TypeError(f"{node}: target must be None or an ArrayKey, got {target!r}")
        self.source = source
        self.dtype = numpy_dtype(
            node,
            "target_dtype" if target_dtype is not None else "dtype",
            target_dtype if target_dtype is not None else dtype,
        )
        self.target_dtype = self.dtype
        self.target = target

    @property
    def name(self) -> str:
        return f"AsType({self.source})"

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.source)
        if self.target is not None and self.target in upstream_spec:
            raise PipelineSetupError(
                f"{self.name}: target {self.target} is already provided upstream; AsType "
                "creates it, choose a new key"
            )
        spec = upstream_spec.copy()
        spec[self.target or self.source] = spec[self.source].replace(dtype=self.dtype)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.target is None:
            _as_upstream(upstream, self.source, self.upstream_spec)
            return upstream, None
        if self.target not in upstream:
            return upstream, None
        wanted = upstream.pop(self.target)
        have = self.upstream_spec[self.source]
        if self.source in upstream:
            own = upstream[self.source].roi
            if own is not None and wanted.roi is not None:
                upstream[self.source] = upstream[self.source].replace(roi=own.union(wanted.roi))
        else:
            upstream[self.source] = ArraySpec(
                roi=wanted.roi, voxel_size=wanted.voxel_size, dtype=have.dtype
            )
        return upstream, None

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.source not in batch:
            return batch
        array = batch[self.source]
        data = cast(self.name, self.source, np.asarray(array.data), self.dtype)
        if data is array.data and self.target is not None:
            data = data.copy()  # the target is a copy, not a view of the source
        batch[self.target or self.source] = Array(
            data, array.spec.replace(dtype=self.dtype), dict(array.attrs)
        )
        return batch
