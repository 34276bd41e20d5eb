"""Intensity augmentations: `IntensityAugment`, `NoiseAugment` (1.x), `GammaAugment`,
`BlurAugment` (section-wise out-of-focus blur, as in EM stacks).

Each node decides in `prepare` whether it applies (probability `p`) and hands a child
Generator (drawn from its own) to `process`, where the kernels of
`gunpowder.transforms.augment_intensity` do the work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array
from ..errors import PipelineRequestError
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ._args import probability


def _check_p(node: str, p: float) -> float:
    """`p` as a probability, else a NodeArgumentError (a ValueError) naming `node` and p."""
    return probability(node, "p", p)


def _child(rng: np.random.Generator) -> np.random.Generator:
    return np.random.default_rng(int(rng.integers(2**63)))


def _float_data(node: str, key: ArrayKey, array: Array) -> np.ndarray:
    if not np.issubdtype(array.data.dtype, np.floating):
        raise PipelineRequestError(
            f"{node}: {key} must hold floats (e.g. after Normalize), got dtype {array.data.dtype}"
        )
    return array.data


def _check_range(
    node: str, key: ArrayKey, data: np.ndarray, low: float = 0.0, value: tuple | None = None
) -> None:
    if data.size == 0:
        return
    lo, hi = value if value is not None else (float(data.min()), float(data.max()))
    if lo < low - 1e-6 or hi > 1.0 + 1e-6:
        raise PipelineRequestError(
            f"{node}: {key} has values in [{lo:g}, {hi:g}], expected [{low:g}, 1]; "
            "normalize it first (Normalize) or pass clip=False"
        )


class _OneArray(Node):
    """A node that changes one array in place of the old one (same spec)."""

    array: ArrayKey
    p: float = 1.0

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.array)
        return upstream_spec

    def _applies(self, request: BatchRequest, rng: np.random.Generator) -> bool:
        """Whether to change the array for this request (draws one number, with probability p)."""
        return rng.random() < self.p and self.array in request

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        if not self._applies(request, rng):
            return request, None
        return request, _child(rng)
