from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import PipelineRequestError
from ..geometry import Coordinate
from ..spec import ArrayKey
from ..transforms.elastic import (
    build_transform,
    draw_jitter,
    random_rotation,
)
from ._warp import _last, _Warp


class DeformAugment(_Warp):
    """Elastically deform a batch with spacing and jitter in world units and full rotations.

    The successor of ElasticAugment for anisotropic data: one physical transform is drawn
    per request and warps every array (whatever its voxel size) and graph of the batch; the
    node asks upstream for the region each requested ROI is read from. Control points every
    `control_point_spacing` are jittered by N(0, `jitter_sigma`) and interpolated with cubic
    splines, then zoomed and rotated. Interpolatable arrays are interpolated linearly, others
    (labels) by nearest neighbour. No data is made up beyond the provided ROI: add a Pad or
    RandomLocation upstream.

    Args:
        control_point_spacing: distance between control points, in world units, per spatial
            axis (one value for all, or one per axis).
        jitter_sigma: standard deviation of the control-point displacements, in world units,
            per spatial axis (0 for an axis not to jitter).
        scale_interval: (start, end) of the uniformly drawn zoom; > 1 magnifies (default
            (1.0, 1.0): no scaling).
        rotate: apply a uniformly random rotation in world space (default True).
        subsample: compute the transform exactly every `subsample` voxels and linearly in
            between, for speed (default 1: every voxel).
        spatial_dims: how many trailing spatial axes to warp; 2 warps each section of a 3D
            array in 2D (default 3).
        use_fast_points_transform: accepted for 1.x compatibility; points are always mapped
            exactly.
        recompute_missing_points: accepted for 1.x compatibility (no effect).
        transform_key: not supported; must be None (anything else raises
            NotImplementedError).
        graph_raster_voxel_size: accepted for 1.x compatibility (no effect: graphs are moved
            exactly, not rasterised).
        p: probability of augmenting a request at all (default 1.0).
        rotation_axes: indices of the warped spatial axes the rotation mixes, e.g. (1, 2) to
            rotate in-plane only (default None: all of them).

    Example::

        pipeline += gp.DeformAugment(
            control_point_spacing=(400, 400, 400),
            jitter_sigma=(20, 20, 20),
            scale_interval=(0.9, 1.1),
            rotation_axes=(1, 2),
            subsample=4,
        )
    """

    def __init__(
        self,
        control_point_spacing: Sequence[int],
        jitter_sigma: Sequence[float],
        scale_interval: Sequence[float] = (1.0, 1.0),
        rotate: bool = True,
        subsample: int = 1,
        spatial_dims: int = 3,
        use_fast_points_transform: bool = False,
        recompute_missing_points: bool = True,
        transform_key: ArrayKey | None = None,
        graph_raster_voxel_size: Sequence[int] | None = None,
        p: float = 1.0,
        rotation_axes: Sequence[int] | None = None,
    ) -> None:
        self.control_point_spacing = Coordinate(control_point_spacing)
        self.jitter_sigma = tuple(float(s) for s in jitter_sigma)
        self.scale_interval = tuple(scale_interval)
        self.rotate = bool(rotate)
        self.subsample = int(subsample)
        self.spatial_dims = int(spatial_dims)
        self.use_fast_points_transform = use_fast_points_transform
        self.recompute_missing_points = recompute_missing_points
        self.transform_key = transform_key
        self.graph_raster_voxel_size = graph_raster_voxel_size
        self.p = float(p)
        self.rotation_axes = None if rotation_axes is None else tuple(int(a) for a in rotation_axes)
        if transform_key is not None:
            raise NotImplementedError("DeformAugment: transform_key is not supported")
        self._check_subsample_and_p("DeformAugment", subsample, p)

    def _draw(self, rng, origin, voxel_size, shape):  # type: ignore[override]
        dims = len(shape)
        sd = min(self.spatial_dims, dims)
        warped = shape[dims - sd :]
        vs = voxel_size[dims - sd :]
        spacing = _last(self.control_point_spacing, sd, "control_point_spacing", self.name) / vs
        sigma = _last(self.jitter_sigma, sd, "jitter_sigma", self.name) / vs
        jitter = draw_jitter(rng, warped, spacing, sigma)
        s0, s1 = self.scale_interval
        scale = s0 + rng.random() * (s1 - s0)
        rotation = np.eye(sd)
        if self.rotate:
            axes = tuple(range(sd)) if self.rotation_axes is None else self.rotation_axes
            if any(a < 0 or a >= sd for a in axes) or len(set(axes)) != len(axes):
                raise PipelineRequestError(
                    f"{self.name}: rotation_axes {axes} must be distinct spatial axes < {sd}"
                )
            if len(axes) >= 2:
                sub = random_rotation(rng, len(axes))
                rotation[np.ix_(axes, axes)] = sub
        # a rotation in world space, expressed in (anisotropic) voxels
        affine = (rotation * vs[None, :] / vs[:, None]) / scale
        return build_transform(
            origin,
            voxel_size,
            shape,
            affine=affine,
            jitter=jitter,
            subsample=self.subsample,
            spatial_dims=sd,
        )
