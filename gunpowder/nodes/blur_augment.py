from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate
from ..spec import ArrayKey, BatchRequest
from ..transforms.augment_intensity import (
    blur_sections,
)
from ._args import NodeArgumentError, bad_argument, check_interval, probability
from ._intensity import _check_p, _OneArray


class BlurContext(NamedTuple):
    """Whether to blur, the drawn sigmas and the ROI to deliver."""

    chosen: Any
    sigmas: Any
    roi: Any


class BlurAugment(_OneArray):
    """Blur random sections in their plane, like out-of-focus EM sections.

    Each section along spatial `axis` is blurred with probability `prob_blur` by a gaussian
    of sigma ~ U(sigma_min, sigma_max) voxels. Context for the blur is read from upstream
    (the ROI grows in-plane by the filter radius, where available), so blurred sections do
    not depend on where a batch was cut. Key, spec and dtype are kept.

    Args:
        array: the ArrayKey of the intensities to change in place.
        prob_blur: per section, the probability that it is blurred (default 0.1).
        sigma_min: lower bound of the gaussian's sigma, in voxels (default 0.5).
        sigma_max: upper bound of the sigma, in voxels (default 2.0).
        axis: the spatial axis (index) along which sections are taken (default 0: z).
        p: probability of augmenting a request at all (default 1.0).

    Example::

        pipeline += gp.BlurAugment(raw, prob_blur=0.05, sigma_min=1.0, sigma_max=3.0)
    """

    def __init__(
        self,
        array: ArrayKey,
        prob_blur: float = 0.1,
        sigma_min: float = 0.5,
        sigma_max: float = 2.0,
        axis: int = 0,
        p: float = 1.0,
    ) -> None:
        self.array = array
        self.prob_blur = probability("BlurAugment", "prob_blur", prob_blur)
        self.sigma_min, self.sigma_max = check_interval(
            "BlurAugment", "sigma_min", sigma_min, "sigma_max", sigma_max
        )
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis < 0:
            raise bad_argument("BlurAugment", "axis", "a spatial axis index (an int >= 0)", axis)
        self.axis = int(axis)
        self.p = _check_p("BlurAugment", p)
        if not 0 <= self.sigma_min <= self.sigma_max:
            raise NodeArgumentError(
                f"BlurAugment: need 0 <= sigma_min <= sigma_max, got {sigma_min}, {sigma_max}"
            )

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        if not self._applies(request, rng):
            return request, None
        spec = request[self.array]
        vs = Coordinate(spec.voxel_size)
        dims = spec.roi.dims
        if not 0 <= self.axis < dims:
            raise PipelineRequestError(
                f"{self.name}: axis {self.axis} is not one of the {dims} spatial axes of {self.array}"
            )
        n = spec.roi.shape[self.axis] // vs[self.axis]
        chosen = np.flatnonzero(rng.random(n) < self.prob_blur)
        sigmas = rng.uniform(self.sigma_min, self.sigma_max, len(chosen))
        if len(chosen) == 0:
            return request, None
        radius = int(4.0 * self.sigma_max + 0.5)
        grow = Coordinate(0 if d == self.axis else radius * vs[d] for d in range(dims))
        roi = spec.roi.grow(grow, grow)
        have = self.upstream_spec[self.array].roi
        if have is not None and not have.unbounded:
            roi = roi.intersect(have).union(spec.roi)
        upstream = request.copy()
        upstream[self.array] = spec.replace(roi=roi)
        # section indices relative to the upstream ROI (same along `axis`)
        return upstream, BlurContext(chosen, sigmas, spec.roi)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        chosen, sigmas, roi = ctx
        array = batch[self.array]
        data = blur_sections(array.data, chosen, sigmas, self.axis, array.spec.roi.dims)
        batch[self.array] = Array(data, array.spec, array.attrs).crop(roi, copy=False)
        return batch
