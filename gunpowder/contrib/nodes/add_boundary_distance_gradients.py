"""`AddBoundaryDistanceGradients`: vectors pointing away from the nearest label boundary."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...batch import Array, Batch
from ...errors import PipelineSetupError
from ...geometry import Roi
from ...nodes._common import array_in, ask_for, spatial_array_spec
from ...pipeline import Node
from ...spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ...transforms import boundary_distance as kernels

_NORMS = (None, "l1", "l2")
_SCALES = (None, "exp")


class AddBoundaryDistanceGradients(Node):
    """Create the gradients of the distance to the nearest boundary between labels.

    A boundary lies between two face-adjacent voxels of different labels (the background, 0,
    counts as a label). The distance of a voxel is the world distance of its centre to the
    nearest boundary face (computed on a grid of half the voxel size; 0 on background voxels,
    and 0 everywhere if there is no boundary). The gradients (float32, one channel per spatial
    axis) are the spatial derivatives of the distances in world units, by central differences
    on the voxel grid (one-sided at the edge), and 0 on background voxels; they point away
    from the nearest boundary. Everything is computed from the labels over the requested
    outputs' ROI: the edge of that ROI is not a boundary.

    Args:
        label_array_key: the ArrayKey of the label ids.
        gradient_array_key: the ArrayKey to create with the gradients (dims, *spatial).
        distance_array_key: optional ArrayKey to create with the distances (float32).
        boundary_array_key: optional ArrayKey to create with the boundary faces: uint8, 1 on a
            face between different labels, at half the labels' voxel size (which must be
            even), so it covers the labels' ROI with twice as many voxels per axis.
        normalize: None, "l1" or "l2": divide each gradient by its norm (norms below 1e-5
            count as 1). Default None.
        scale: None or "exp": multiply the gradients by beta * exp(-alpha * distance).
            Default None.
        scale_args: for "exp", the pair (alpha, beta).

    Example::

        pipeline += AddBoundaryDistanceGradients(
            label_array_key=gt_labels,
            gradient_array_key=gt_gradients,
            distance_array_key=gt_distances,
            normalize="l2",
        )
    """

    def __init__(
        self,
        label_array_key: ArrayKey,
        gradient_array_key: ArrayKey | None = None,
        distance_array_key: ArrayKey | None = None,
        boundary_array_key: ArrayKey | None = None,
        normalize: str | None = None,
        scale: str | None = None,
        scale_args: tuple[float, float] | None = None,
    ) -> None:
        name = "AddBoundaryDistanceGradients"
        if not isinstance(label_array_key, ArrayKey):
            raise ValueError(
                f"{name}: label_array_key must be an ArrayKey, got {label_array_key!r}"
            )
        outputs = {
            "gradient_array_key": gradient_array_key,
            "distance_array_key": distance_array_key,
            "boundary_array_key": boundary_array_key,
        }
        for arg, key in outputs.items():
            if key is not None and not isinstance(key, ArrayKey):
                raise ValueError(f"{name}: {arg} must be an ArrayKey or None, got {key!r}")
        if all(key is None for key in outputs.values()):
            raise ValueError(
                f"{name}: nothing to create; give gradient_array_key (or distance_array_key "
                "or boundary_array_key)"
            )
        if normalize not in _NORMS:
            raise ValueError(f"{name}: normalize must be one of {_NORMS}, got {normalize!r}")
        if scale not in _SCALES:
            raise ValueError(f"{name}: scale must be one of {_SCALES}, got {scale!r}")
        if scale == "exp":
            if (
                scale_args is None
                or len(scale_args) != 2
                or not all(isinstance(a, (int, float, np.number)) for a in scale_args)
            ):
                raise ValueError(
                    f"{name}: scale='exp' needs scale_args=(alpha, beta), got {scale_args!r}"
                )
        self.label_array_key = label_array_key
        self.gradient_array_key = gradient_array_key
        self.distance_array_key = distance_array_key
        self.boundary_array_key = boundary_array_key
        self.normalize = normalize
        self.scale = scale
        self.scale_args = None if scale_args is None else tuple(float(a) for a in scale_args)

    def _outputs(self) -> list[ArrayKey]:
        keys = [self.gradient_array_key, self.distance_array_key, self.boundary_array_key]
        return [k for k in keys if k is not None]

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.label_array_key)
        spec = upstream_spec.copy()
        field = labels.replace(dtype=np.float32, interpolatable=True)
        if self.gradient_array_key is not None:
            spec[self.gradient_array_key] = field
        if self.distance_array_key is not None:
            spec[self.distance_array_key] = field.copy()
        if self.boundary_array_key is not None:
            if any(v % 2 for v in labels.voxel_size):
                raise PipelineSetupError(
                    f"{self.name}: boundary_array_key needs an even voxel size of "
                    f"{self.label_array_key} (it is provided at half of it), got "
                    f"{labels.voxel_size}"
                )
            spec[self.boundary_array_key] = labels.replace(
                voxel_size=labels.voxel_size / 2, dtype=np.uint8, interpolatable=False
            )
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        roi: Roi | None = None
        for key in self._outputs():
            if key in request:
                roi = request[key].roi if roi is None else roi.union(request[key].roi)
                del upstream[key]
        if roi is None:
            return upstream, None
        vs = self.upstream_spec[self.label_array_key].voxel_size
        roi = roi.snap_to_grid(vs, mode="grow")
        ask_for(upstream, self.label_array_key, roi, vs)
        return upstream, roi

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        labels = array_in(batch, self.label_array_key, ctx)
        data = labels.data
        if data.ndim != ctx.dims:
            raise ValueError(
                f"{self.label_array_key} must have no channels, got shape {data.shape}"
            )
        vs = labels.spec.voxel_size
        field = ArraySpec(roi=ctx, voxel_size=vs, interpolatable=True, dtype=np.float32)
        distances = kernels.boundary_distance(data, vs)
        if self.gradient_array_key is not None:
            gradients = kernels.distance_gradients(distances, vs, data)
            if self.normalize is not None:
                gradients = kernels.normalize_vectors(gradients, self.normalize)
            if self.scale == "exp":
                alpha, beta = self.scale_args  # type: ignore[misc]
                gradients = kernels.exp_scale(gradients, distances, alpha, beta)
            batch[self.gradient_array_key] = Array(gradients, field)
        if self.distance_array_key is not None:
            batch[self.distance_array_key] = Array(distances, field.copy())
        if self.boundary_array_key is not None:
            boundaries = kernels.doubled_boundary_map(data)
            spec = ArraySpec(roi=ctx, voxel_size=vs / 2, interpolatable=False, dtype=np.uint8)
            batch[self.boundary_array_key] = Array(boundaries, spec)
        return batch


__all__ = ["AddBoundaryDistanceGradients"]
