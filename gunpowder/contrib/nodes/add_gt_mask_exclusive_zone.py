"""`AddGtMaskExclusiveZone`: masks that are 0 in a zone around the ON regions of binary maps."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...batch import Array, Batch
from ...geometry import Coordinate
from ...nodes._common import (
    array_in,
    ask_for,
    check_keys_dict,
    clip_to,
    grown,
    margin_voxels,
    spatial_array_spec,
)
from ...pipeline import Node
from ...spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ...transforms.exclusive_zone import exclusive_zone_mask


class AddGtMaskExclusiveZone(Node):
    """Create exclusive-zone masks: 0 on a shell around the ON regions of a binary map, else 1.

    Typically used so that a loss ignores the uncertain surroundings of small targets (e.g.
    rasterised synapses): a voxel is 0 if it is OFF (0) in the binary map but within the zone
    extent of an ON (non-zero) voxel, and 1 everywhere else, ON voxels included. Distances are
    world distances between voxel centres. The zone extent is the radius of
    `rasterization_setting` if given, else `gaussian_sigma_for_zone` voxels along each axis.
    Each mask has the spec (and dtype) of its binary map; the node asks upstream for the
    binary map grown by the zone extent, so masks do not depend on where a batch was cut.

    Args:
        EZ_masks_to_binary_map: dict from the ArrayKey of each exclusive-zone mask to create
            to the ArrayKey of its binary map.
        gaussian_sigma_for_zone: the zone extent in voxels per axis (> 0) when no
            `rasterization_setting` is given (default 1).
        rasterization_setting: optional `RasterizationSettings` (or anything with a `radius`,
            in world units, one number or one per axis) whose radius is the zone extent.

    Example::

        pipeline += AddGtMaskExclusiveZone(
            {gt_syn_ez_mask: gt_syn_binary},
            rasterization_setting=gp.RasterizationSettings(radius=(40, 40, 40)),
        )
    """

    def __init__(
        self,
        EZ_masks_to_binary_map: dict[ArrayKey, ArrayKey],
        gaussian_sigma_for_zone: float = 1,
        rasterization_setting: Any = None,
    ) -> None:
        name = "AddGtMaskExclusiveZone"
        check_keys_dict(
            name,
            "EZ_masks_to_binary_map",
            EZ_masks_to_binary_map,
            ArrayKey,
            lambda v: isinstance(v, ArrayKey),
        )
        if not isinstance(gaussian_sigma_for_zone, (int, float, np.number)) or not (
            gaussian_sigma_for_zone > 0
        ):
            raise ValueError(
                f"{name}: gaussian_sigma_for_zone must be a positive number, got "
                f"{gaussian_sigma_for_zone!r}"
            )
        if rasterization_setting is not None:
            radius = getattr(rasterization_setting, "radius", None)
            values = np.atleast_1d(np.asarray(radius, dtype=float)) if radius is not None else None
            if values is None or values.ndim != 1 or np.any(values < 0):
                raise ValueError(
                    f"{name}: rasterization_setting must have a radius >= 0 (world units), got "
                    f"{rasterization_setting!r}"
                )
        self.EZ_masks_to_binary_map = dict(EZ_masks_to_binary_map)
        self.gaussian_sigma_for_zone = float(gaussian_sigma_for_zone)
        self.rasterization_setting = rasterization_setting

    def _radius(self, voxel_size: Coordinate) -> tuple[float, ...]:
        """The zone extent in world units per axis."""
        if self.rasterization_setting is None:
            return tuple(self.gaussian_sigma_for_zone * v for v in voxel_size)
        radius = np.atleast_1d(np.asarray(self.rasterization_setting.radius, dtype=float))
        if len(radius) == 1:
            radius = np.repeat(radius, voxel_size.dims)
        if len(radius) != voxel_size.dims:
            raise ValueError(
                f"the radius {tuple(radius)} of rasterization_setting does not match the "
                f"{voxel_size.dims}D voxel size {voxel_size}"
            )
        return tuple(float(r) for r in radius)

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        spec = upstream_spec.copy()
        for mask, binary in self.EZ_masks_to_binary_map.items():
            binary_spec = spatial_array_spec(self, upstream_spec, binary)
            self._radius(binary_spec.voxel_size)
            spec[mask] = binary_spec.replace(interpolatable=False)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        todo = {}
        for mask, binary in self.EZ_masks_to_binary_map.items():
            if mask not in request:
                continue
            del upstream[mask]
            roi = request[mask].roi
            vs = self.upstream_spec[binary].voxel_size
            context = grown(roi, margin_voxels(self._radius(vs), vs), vs)
            context = clip_to(context, self.upstream_spec[binary].roi)
            ask_for(upstream, binary, context, vs)
            todo[mask] = context
        return upstream, todo

    def process(self, batch: Batch, ctx: Any) -> Batch:
        for mask, context in ctx.items():
            binary = array_in(batch, self.EZ_masks_to_binary_map[mask], context)
            vs = binary.spec.voxel_size
            data = exclusive_zone_mask(binary.data, self._radius(vs), tuple(vs))
            spec = ArraySpec(roi=context, voxel_size=vs, interpolatable=False, dtype=data.dtype)
            batch[mask] = Array(data, spec)
        return batch


__all__ = ["AddGtMaskExclusiveZone"]
