"""`AddNonsymmetricAffinities`: affinities between two different arrays, both ways."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ...batch import Array, Batch
from ...errors import PipelineSetupError
from ...geometry import Coordinate, Roi
from ...nodes._common import array_in, ask_for, spatial_array_spec
from ...pipeline import Node
from ...spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ...transforms.nonsymmetric_affinities import shifted_conjunction


class NonsymmetricContext(NamedTuple):
    """Where the affinities go and the context read around them."""

    roi: Any
    context: Any


class AddNonsymmetricAffinities(Node):
    """Create affinities from `array_key_2` onto `array_key_1` and back, per offset vector.

    For the i-th vector v (world units): affinity 1 is
    ``affs_1[i, p] = array_1[p] AND array_2[p - v]`` and affinity 2 is
    ``affs_2[i, p] = array_2[p] AND array_1[p + v]`` (bitwise for integer and bool arrays, as
    1.x; 1 where both are non-zero otherwise). Both arrays must share voxel size and dtype;
    the affinities have that dtype, one channel per vector, and the attribute
    `affinity_vectors`. They are provided on the arrays' common ROI shrunk by the largest
    vector component per axis, and the node asks upstream for that much context.

    Args:
        affinity_vectors: the offset vectors, in world units (multiples of the voxel size),
            one entry per spatial axis each.
        array_key_1: the ArrayKey of the first array.
        array_key_2: the ArrayKey of the second array.
        affinity_array_key_1: the ArrayKey to create for affinities from 2 onto 1.
        affinity_array_key_2: the ArrayKey to create for affinities from 1 onto 2.

    Example::

        pipeline += AddNonsymmetricAffinities(
            affinity_vectors=[(40, 0, 0), (0, 4, 0), (0, 0, 4)],
            array_key_1=pre_mask,
            array_key_2=post_mask,
            affinity_array_key_1=pre_affs,
            affinity_array_key_2=post_affs,
        )
    """

    def __init__(
        self,
        affinity_vectors: Sequence[Sequence[int]],
        array_key_1: ArrayKey,
        array_key_2: ArrayKey,
        affinity_array_key_1: ArrayKey,
        affinity_array_key_2: ArrayKey,
    ) -> None:
        name = "AddNonsymmetricAffinities"
        vectors = np.asarray(affinity_vectors)
        if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
            raise ValueError(
                f"{name}: affinity_vectors must be a non-empty list of vectors of equal length, "
                f"got {affinity_vectors!r}"
            )
        if not np.all(np.mod(vectors, 1) == 0):
            raise ValueError(f"{name}: affinity_vectors must be integers, got {affinity_vectors!r}")
        keys = {
            "array_key_1": array_key_1,
            "array_key_2": array_key_2,
            "affinity_array_key_1": affinity_array_key_1,
            "affinity_array_key_2": affinity_array_key_2,
        }
        for arg, key in keys.items():
            if not isinstance(key, ArrayKey):
                raise ValueError(f"{name}: {arg} must be an ArrayKey, got {key!r}")
        self.affinity_vectors = [Coordinate(int(x) for x in v) for v in vectors]
        self.array_key_1 = array_key_1
        self.array_key_2 = array_key_2
        self.affinity_array_key_1 = affinity_array_key_1
        self.affinity_array_key_2 = affinity_array_key_2
        self.padding = Coordinate(int(x) for x in np.abs(vectors).max(axis=0))

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        a = spatial_array_spec(self, upstream_spec, self.array_key_1)
        b = spatial_array_spec(self, upstream_spec, self.array_key_2)
        if a.voxel_size != b.voxel_size:
            raise PipelineSetupError(
                f"{self.name}: {self.array_key_1} and {self.array_key_2} must have the same "
                f"voxel size, got {a.voxel_size} and {b.voxel_size}"
            )
        if a.dtype is not None and b.dtype is not None and a.dtype != b.dtype:
            raise PipelineSetupError(
                f"{self.name}: {self.array_key_1} and {self.array_key_2} must have the same "
                f"dtype, got {a.dtype} and {b.dtype}"
            )
        vs = a.voxel_size
        if self.padding.dims != vs.dims:
            raise PipelineSetupError(
                f"{self.name}: affinity_vectors have {self.padding.dims} entries, but "
                f"{self.array_key_1} is {vs.dims}D"
            )
        for v in self.affinity_vectors:
            if not v.is_multiple_of(vs):
                raise PipelineSetupError(
                    f"{self.name}: affinity vector {v} is not a multiple of the voxel size {vs}"
                )
        roi = a.roi
        if roi is not None and b.roi is not None:
            roi = roi.intersect(b.roi)
        elif roi is None:
            roi = b.roi
        if roi is not None:
            roi = roi.grow(-self.padding, -self.padding)
        spec = upstream_spec.copy()
        out = a.replace(roi=roi, interpolatable=False)
        spec[self.affinity_array_key_1] = out
        spec[self.affinity_array_key_2] = out.copy()
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        roi: Roi | None = None
        for key in (self.affinity_array_key_1, self.affinity_array_key_2):
            if key in request:
                roi = request[key].roi if roi is None else roi.union(request[key].roi)
                del upstream[key]
        if roi is None:
            return upstream, None
        vs = self.upstream_spec[self.array_key_1].voxel_size
        context = roi.grow(self.padding, self.padding)
        ask_for(upstream, self.array_key_1, context, vs)
        ask_for(upstream, self.array_key_2, context, vs)
        return upstream, NonsymmetricContext(roi, context)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        roi, context = ctx
        a = array_in(batch, self.array_key_1, context)
        b = array_in(batch, self.array_key_2, context)
        if a.data.ndim != roi.dims or b.data.ndim != roi.dims:
            raise ValueError(
                f"{self.array_key_1} and {self.array_key_2} must have no channels, got shapes "
                f"{a.data.shape} and {b.data.shape}"
            )
        vs = a.spec.voxel_size
        margin = self.padding / vs
        offsets = [v / vs for v in self.affinity_vectors]
        attrs = {"affinity_vectors": [tuple(v) for v in self.affinity_vectors]}
        affs_1 = shifted_conjunction(a.data, b.data, offsets, margin)
        affs_2 = shifted_conjunction(b.data, a.data, [-o for o in offsets], margin)
        for key, data in ((self.affinity_array_key_1, affs_1), (self.affinity_array_key_2, affs_2)):
            spec = ArraySpec(roi=roi, voxel_size=vs, interpolatable=False, dtype=data.dtype)
            batch[key] = Array(data, spec, dict(attrs))
        return batch


__all__ = ["AddNonsymmetricAffinities"]
