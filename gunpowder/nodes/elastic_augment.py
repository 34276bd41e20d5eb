from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..transforms.elastic import (
    build_transform,
    draw_jitter,
    draw_misalignment,
    rotation_2d,
)
from ._warp import _last, _Warp


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
        use_fast_points_transform: accepted for 1.x compatibility; points are always mapped
            exactly.
        recompute_missing_points: accepted for 1.x compatibility (no effect).
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
        self.control_point_spacing = tuple(control_point_spacing)
        self.jitter_sigma = tuple(jitter_sigma)
        self.rotation_interval = tuple(rotation_interval)
        self.scale_interval = tuple(scale_interval)
        self.prob_slip = float(prob_slip)
        self.prob_shift = float(prob_shift)
        self.max_misalign = max_misalign
        self.subsample = int(subsample)
        self.spatial_dims = int(spatial_dims)
        self.use_fast_points_transform = use_fast_points_transform
        self.recompute_missing_points = recompute_missing_points
        self.p = float(p)
        if len(self.rotation_interval) != 2 or len(self.scale_interval) != 2:
            raise ValueError("ElasticAugment: rotation_interval and scale_interval need 2 values")
        self._check_subsample_and_p("ElasticAugment", subsample, p)

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
