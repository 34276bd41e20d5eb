"""`ElasticAugmentation`: the seed-era (2017) name of `ElasticAugment`."""

from __future__ import annotations

from collections.abc import Sequence

from .elastic_augment import ElasticAugment


class ElasticAugmentation(ElasticAugment):
    """`ElasticAugment` under its 2017 name, with the same arguments and behaviour.

    The first README's pipeline augments with `ElasticAugmentation(control_point_spacing,
    jitter_sigma, rotation_interval)`; this class keeps that spelling working. Errors name
    the node `ElasticAugmentation`.

    Args:
        control_point_spacing: distance between control points, in voxels, per spatial axis.
        jitter_sigma: standard deviation of the control-point displacements, in voxels, per
            spatial axis (0 for an axis not to jitter).
        rotation_interval: (start, end) of the uniformly drawn rotation angle, in radians, of
            the last two spatial axes.
        scale_interval: (start, end) of the uniformly drawn zoom (default (1.0, 1.0)).
        prob_slip: per section, the probability that it alone is moved (default 0).
        prob_shift: per section, the probability that it and all following sections are
            moved (default 0).
        max_misalign: the largest slip/shift, in voxels (default 0).
        subsample: compute the transform every `subsample` voxels, linearly in between
            (default 1).
        spatial_dims: how many trailing spatial axes to warp (default 3).
        use_fast_points_transform: accepted for compatibility; points are mapped exactly.
        recompute_missing_points: accepted for compatibility (no effect).
        p: probability of augmenting a request at all (default 1.0).

    Example::

        augment = gp.ElasticAugmentation(
            control_point_spacing=[4, 40, 40],
            jitter_sigma=[0, 2, 2],
            rotation_interval=[0, math.pi / 2.0])
        pipeline = source + gp.RandomLocation() + augment
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
        super().__init__(
            control_point_spacing,
            jitter_sigma,
            rotation_interval,
            scale_interval=scale_interval,
            prob_slip=prob_slip,
            prob_shift=prob_shift,
            max_misalign=max_misalign,
            subsample=subsample,
            spatial_dims=spatial_dims,
            use_fast_points_transform=use_fast_points_transform,
            recompute_missing_points=recompute_missing_points,
            p=p,
        )
