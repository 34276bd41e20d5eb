from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ..transforms.augment_intensity import (
    gamma,
)
from ._args import NodeArgumentError, check_interval
from ._intensity import _check_p, _float_data


class GammaAugment(Node):
    """Raise intensities to a random power gamma ~ U(gamma_min, gamma_max).

    A non-linear contrast change (brightens or darkens mid-tones) for robustness. The same
    gamma applies to all `arrays` of a request; they must hold non-negative floats (e.g. in
    [0, 1] after Normalize). Keys, specs and dtypes are kept.

    Args:
        arrays: one ArrayKey or a list of them, changed in place.
        gamma_min: lower bound of the exponent (> 0).
        gamma_max: upper bound of the exponent (>= gamma_min).
        p: probability of augmenting a request at all (default 1.0).

    Example::

        pipeline += gp.GammaAugment(raw, gamma_min=0.8, gamma_max=1.25)
    """

    def __init__(
        self,
        arrays: ArrayKey | Sequence[ArrayKey],
        gamma_min: float,
        gamma_max: float,
        p: float = 1.0,
    ) -> None:
        self.arrays = (arrays,) if isinstance(arrays, ArrayKey) else tuple(arrays)
        self.gamma_min, self.gamma_max = check_interval(
            "GammaAugment", "gamma_min", gamma_min, "gamma_max", gamma_max
        )
        self.p = _check_p("GammaAugment", p)
        if not 0 < self.gamma_min <= self.gamma_max:
            raise NodeArgumentError(
                f"GammaAugment: need 0 < gamma_min <= gamma_max, got {gamma_min}, {gamma_max}"
            )

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, *self.arrays)
        return upstream_spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        if rng.random() >= self.p:
            return request, None
        return request, float(rng.uniform(self.gamma_min, self.gamma_max))

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        for key in self.arrays:
            if key not in batch:
                continue
            array = batch[key]
            data = _float_data(self.name, key, array)
            if data.size and float(data.min()) < 0:
                raise PipelineRequestError(
                    f"{self.name}: {key} has negative values; gamma needs intensities >= 0"
                )
            batch[key] = Array(gamma(data, ctx), array.spec, array.attrs)
        return batch
