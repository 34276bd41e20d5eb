from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..transforms.elastic import (
    build_transform,
    draw_jitter,
    draw_misalignment,
    rotation_2d,
)
from . import _args as args
from ._warp import _check_lengths, _last, _Warp


class ElasticAugment(_Warp):
    """Elastically deform a batch (1.x): jitter on a control-point grid, rotation, scaling, and
    EM section slips/shifts, all in voxels of the arrays.

    Augments training data with plausible tissue deformations. One transform is drawn per
    request and applied to every array and graph of the batch; the node asks upstream for the
    region each requested ROI is read from. Control points every `control_point_spacing`
    voxels are moved by N(0, `jitter_sigma`) voxels and interpolated with cubic splines; an
    angle from `rotation_interval` rotates the last two spatial axes, a factor from
    `scale_interval` zooms; section slips and shifts apply to 3D requests only.
    Interpolatable arrays are interpolated linearly, others (labels) by nearest neighbour.
    Arrays of different voxel sizes share one transform (voxel counts then refer to the
    finest voxel size of the request). As in 1.x, no data is made up beyond the provided
    ROI: add a Pad or RandomLocation upstream.

    Args:
        control_point_spacing: distance between control points, in voxels, per spatial axis
            (one value for all, or one per axis; with more entries the last ones are used).
        jitter_sigma: standard deviation of the control-point displacements, in voxels, per
            spatial axis (0 for an axis not to jitter).
        rotation_interval: (start, end) of the uniformly drawn rotation angle, in radians, of
            the last two spatial axes; (0, 0) for no rotation.
        scale_interval: (start, end) of the uniformly drawn zoom; > 1 magnifies (default
            (1.0, 1.0): no scaling).
        prob_slip: per section, the probability that it alone is moved in (y, x) (default 0).
        prob_shift: per section, the probability that it and all following sections are moved
            (default 0).
        max_misalign: the largest slip/shift, in voxels; offsets are uniform in
            [-max_misalign, max_misalign] (default 0).
        subsample: compute the transform exactly every `subsample` voxels and linearly in
            between, for speed (default 1: every voxel).
        spatial_dims: how many trailing spatial axes to warp; 2 warps each section of a 3D
            array in 2D with the same transform, without mixing sections (default 3).
        use_fast_points_transform: map graph nodes by a lookup table built from a
            nearest-neighbour warp of the graph's ROI (faster for many points) instead of
            inverting the transform per point (default False).
        recompute_missing_points: with the fast transform, map points that fall into holes
            of the nearest-neighbour lookup exactly (default True); False drops them, as 1.x.
        p: probability of augmenting a request at all (default 1.0).

    Example::

        pipeline += gp.ElasticAugment(
            control_point_spacing=[4, 40, 40],
            jitter_sigma=[0, 2, 2],
            rotation_interval=[0, math.pi / 2],
            prob_slip=0.05,
            prob_shift=0.05,
            max_misalign=10,
            subsample=8,
        )
    """

    def __init__(
        self,
        control_point_spacing: Sequence[int],
        jitter_sigma: Sequence[float],
        rotation_interval: Sequence[float],
        scale_interval: Sequence[float] = (1.0, 1.0),
        prob_slip: float = 0,
        prob_shift: float = 0,
        max_misalign: int = 0,
        subsample: int = 1,
        spatial_dims: int = 3,
        use_fast_points_transform: bool = False,
        recompute_missing_points: bool = True,
        p: float = 1.0,
    ) -> None:
        name = "ElasticAugment"
        self.control_point_spacing = args.positive(
            name, "control_point_spacing", control_point_spacing
        )
        self.jitter_sigma = args.non_negative(name, "jitter_sigma", jitter_sigma)
        self.rotation_interval = args.interval(name, "rotation_interval", rotation_interval)
        self.scale_interval = args.interval(name, "scale_interval", scale_interval)
        if self.scale_interval[0] <= 0:
            raise ValueError(f"{name}: scale_interval must be > 0, got {scale_interval!r}")
        self.prob_slip = args.probability(name, "prob_slip", prob_slip)
        self.prob_shift = args.probability(name, "prob_shift", prob_shift)
        if self.prob_slip + self.prob_shift > 1 + 1e-9:
            raise ValueError(
                f"{name}: prob_slip + prob_shift must be at most 1, got {prob_slip} + {prob_shift}"
            )
        self.max_misalign = args.integer(name, "max_misalign", max_misalign, minimum=0)
        self.subsample = args.integer(name, "subsample", subsample, minimum=1)
        self.spatial_dims = args.integer(name, "spatial_dims", spatial_dims, minimum=1)
        self.use_fast_points_transform = bool(use_fast_points_transform)
        self.recompute_missing_points = bool(recompute_missing_points)
        self.p = args.probability(name, "p", p)
        _check_lengths(name, self.control_point_spacing, self.jitter_sigma)

    def _draw(self, rng, origin, voxel_size, shape):  # type: ignore[override]
        dims = len(shape)
        sd = min(self.spatial_dims, dims)
        warped = shape[dims - sd :]
        spacing = _last(self.control_point_spacing, sd, "control_point_spacing", self.name)
        sigma = _last(self.jitter_sigma, sd, "jitter_sigma", self.name)
        jitter = draw_jitter(rng, warped, spacing, sigma)
        r0, r1 = self.rotation_interval
        angle = r0 + rng.random() * (r1 - r0)
        s0, s1 = self.scale_interval
        scale = s0 + rng.random() * (s1 - s0)
        affine = np.eye(sd)
        if sd >= 2:
            affine[-2:, -2:] = rotation_2d(angle)
        affine /= scale
        shifts = None
        if dims == 3 and self.prob_slip + self.prob_shift > 0:
            shifts = draw_misalignment(
                rng, shape[0], self.prob_slip, self.prob_shift, self.max_misalign
            )
        return build_transform(
            origin,
            voxel_size,
            shape,
            affine=affine,
            jitter=jitter,
            section_shifts=shifts,
            subsample=self.subsample,
            spatial_dims=sd,
        )
