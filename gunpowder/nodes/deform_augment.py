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
from . import _args as args
from ._warp import _check_lengths, _graph_grid, _last, _Warp


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
        use_fast_points_transform: map graph nodes by a lookup table built from a
            nearest-neighbour warp of the graph's ROI (faster for many points) instead of
            inverting the transform per point (default False).
        recompute_missing_points: with the fast transform, map points that fall into holes
            of the nearest-neighbour lookup exactly (default True); False drops them, as 1.x.
        transform_key: not supported; must be None (anything else raises
            NotImplementedError).
        graph_raster_voxel_size: the voxel size (world units) of the fast points transform's
            lookup grid (default None: the finest requested voxel size).
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
        name = "DeformAugment"
        self.control_point_spacing = Coordinate(
            args.integer(name, "control_point_spacing", v, minimum=1)
            for v in args.positive(name, "control_point_spacing", control_point_spacing)
        )
        self.jitter_sigma = args.non_negative(name, "jitter_sigma", jitter_sigma)
        self.scale_interval = args.interval(name, "scale_interval", scale_interval)
        if self.scale_interval[0] <= 0:
            raise ValueError(f"{name}: scale_interval must be > 0, got {scale_interval!r}")
        self.rotate = bool(rotate)
        self.subsample = args.integer(name, "subsample", subsample, minimum=1)
        self.spatial_dims = args.integer(name, "spatial_dims", spatial_dims, minimum=1)
        self.use_fast_points_transform = bool(use_fast_points_transform)
        self.recompute_missing_points = bool(recompute_missing_points)
        self.transform_key = transform_key
        self.graph_raster_voxel_size = (
            None
            if graph_raster_voxel_size is None
            else tuple(
                args.integer(name, "graph_raster_voxel_size", v, minimum=1)
                for v in args.positive(name, "graph_raster_voxel_size", graph_raster_voxel_size)
            )
        )
        self.p = args.probability(name, "p", p)
        self.rotation_axes = args.axes(name, "rotation_axes", rotation_axes)
        if (
            self.rotation_axes is not None
            and self.rotation_axes
            and (max(self.rotation_axes) >= self.spatial_dims or len(self.rotation_axes) < 2)
        ):
            raise ValueError(
                f"{name}: rotation_axes must name at least 2 of the {self.spatial_dims} "
                f"spatial_dims axes, got {rotation_axes!r}"
            )
        if transform_key is not None:
            raise NotImplementedError("DeformAugment: transform_key is not supported")
        _check_lengths(name, tuple(self.control_point_spacing), self.jitter_sigma)

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

    def _graph_only_grid(self, graphs: dict, dims: int) -> np.ndarray:
        """Graphs alone warp on `graph_raster_voxel_size` (default 1), as in 1.x."""
        return _graph_grid(self.name, self.graph_raster_voxel_size, dims)
