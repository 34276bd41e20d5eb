"""`ElasticAugmentation`: the seed-era (2017) name of `ElasticAugment`."""

from __future__ import annotations

from .elastic_augment import ElasticAugment


class ElasticAugmentation(ElasticAugment):
    """`ElasticAugment` under its 2017 name, with the same arguments and behaviour.

    The first README's pipeline augments with `ElasticAugmentation(control_point_spacing,
    jitter_sigma, rotation_interval)`; this class keeps that spelling working. Errors name
    the node `ElasticAugmentation`.

    Args:
        control_point_spacing, jitter_sigma, rotation_interval, scale_interval, prob_slip,
        prob_shift, max_misalign, subsample, spatial_dims, use_fast_points_transform,
        recompute_missing_points, p: as for `ElasticAugment` (see `help(gp.ElasticAugment)`).

    Example::

        augment = gp.ElasticAugmentation(
            control_point_spacing=[4, 40, 40],
            jitter_sigma=[0, 2, 2],
            rotation_interval=[0, math.pi / 2.0])
        pipeline = source + gp.RandomLocation() + augment
    """
