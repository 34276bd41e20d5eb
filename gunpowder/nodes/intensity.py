"""Intensity augmentations: `IntensityAugment`, `NoiseAugment` (1.x), `GammaAugment`,
`BlurAugment` (section-wise out-of-focus blur, as in EM stacks).

Each node decides in `prepare` whether it applies (probability `p`) and hands a child
Generator (drawn from its own) to `process`, where the kernels of
`gunpowder.transforms.augment_intensity` do the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate
from ..pipeline import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ..transforms.augment_intensity import (
    add_noise,
    blur_sections,
    count_slabs,
    gamma,
    scale_shift_range,
)


def _check_p(node: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{node}: p must be in [0, 1], got {p}")
    return p


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


class IntensityAugment(_OneArray):
    """Randomly scale and shift intensities (1.x): `a = mean + (a - mean) * scale + shift`.

    Makes a network robust to contrast and brightness changes between (and within) volumes.
    scale ~ U(scale_min, scale_max) and shift ~ U(shift_min, shift_max) are drawn per slab,
    and `mean` is that slab's mean. The array must hold floats (e.g. after Normalize); key,
    spec and dtype are kept.

    Args:
        array: the ArrayKey of the intensities to change in place.
        scale_min: lower bound of the contrast factor.
        scale_max: upper bound of the contrast factor.
        shift_min: lower bound of the brightness shift (in intensity units, e.g. of [0, 1]).
        shift_max: upper bound of the brightness shift.
        z_section_wise: draw scale and shift for every z section (first spatial axis of a 3D
            array) on its own (default False); not together with `slab`.
        clip: the input must lie in [0, 1] and the result is clipped to it (default True).
        p: probability of augmenting a request at all (default 1.0).
        slab: the shape, in voxels, of the blocks that get their own scale and shift, for the
            array's trailing axes; -1 is a whole axis (default None: the whole array).

    Example::

        pipeline += gp.IntensityAugment(raw, scale_min=0.9, scale_max=1.1,
                                        shift_min=-0.1, shift_max=0.1, z_section_wise=True)
    """

    def __init__(
        self,
        array: ArrayKey,
        scale_min: float,
        scale_max: float,
        shift_min: float,
        shift_max: float,
        z_section_wise: bool = False,
        clip: bool = True,
        p: float = 1.0,
        slab: Sequence[int] | None = None,
    ) -> None:
        self.array = array
        self.scale_min = float(scale_min)
        self.scale_max = float(scale_max)
        self.shift_min = float(shift_min)
        self.shift_max = float(shift_max)
        self.z_section_wise = bool(z_section_wise)
        self.clip = bool(clip)
        self.p = _check_p("IntensityAugment", p)
        self.slab = None if slab is None else tuple(int(s) for s in slab)
        if self.z_section_wise and self.slab is not None:
            raise ValueError("IntensityAugment: give z_section_wise or slab, not both")

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        array = batch[self.array]
        data = _float_data(self.name, self.array, array)
        slab = self.slab
        if self.z_section_wise:
            dims = array.spec.roi.dims if array.spec.roi is not None else data.ndim
            if dims != 3:
                raise PipelineRequestError(
                    f"{self.name}: z_section_wise needs a 3D array, {self.array} is {dims}D"
                )
            slab = (1, -1, -1)
        n = count_slabs(data.shape, slab)
        scales = ctx.uniform(self.scale_min, self.scale_max, n)
        shifts = ctx.uniform(self.shift_min, self.shift_max, n)
        out, value = scale_shift_range(data, scales, shifts, slab, self.clip)
        if self.clip:
            _check_range(self.name, self.array, data, value=value)
        batch[self.array] = Array(out, array.spec, array.attrs)
        return batch


class NoiseAugment(_OneArray):
    """Add random noise (1.x; scikit-image's `random_noise` modes and keyword arguments).

    Makes a network robust to imaging noise. The array must hold floats in [0, 1] or
    [-1, 1] (e.g. after Normalize); key, spec and dtype are kept.

    Args:
        array: the ArrayKey of the intensities to change in place.
        mode: "gaussian" (a + N(mean, var)), "speckle" (a + a * N(mean, var)), "poisson",
            "salt", "pepper" or "s&p" (default "gaussian").
        clip: keep the input's range ([-1, 1] if it has negative values, else [0, 1])
            (default True).
        p: probability of augmenting a request at all (default 1.0).
        **kwargs: the mode's parameters as in scikit-image: `mean` (default 0) and `var`
            (default 0.01) for gaussian/speckle, `amount` (default 0.05) and
            `salt_vs_pepper` (default 0.5) for salt/pepper/s&p. `seed`/`rng` are ignored:
            the engine's generator is used.

    Example::

        pipeline += gp.NoiseAugment(raw, mode="gaussian", var=0.001)
    """

    def __init__(
        self, array: ArrayKey, mode: str = "gaussian", clip: bool = True, p: float = 1.0, **kwargs
    ) -> None:
        self.array = array
        self.mode = mode
        self.clip = bool(clip)
        self.p = _check_p("NoiseAugment", p)
        self.kwargs = kwargs
        if mode not in ("gaussian", "speckle", "poisson", "salt", "pepper", "s&p"):
            raise ValueError(
                f"NoiseAugment: unknown mode {mode!r}; "
                "use gaussian, speckle, poisson, salt, pepper or s&p"
            )

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        array = batch[self.array]
        data = _float_data(self.name, self.array, array)
        _check_range(self.name, self.array, data, low=-1.0)
        out = add_noise(data, self.mode, ctx, clip=self.clip, **dict(self.kwargs))
        batch[self.array] = Array(out, array.spec, array.attrs)
        return batch


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
        self.gamma_min = float(gamma_min)
        self.gamma_max = float(gamma_max)
        self.p = _check_p("GammaAugment", p)
        if not 0 < self.gamma_min <= self.gamma_max:
            raise ValueError(
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
        self.prob_blur = float(prob_blur)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.axis = int(axis)
        self.p = _check_p("BlurAugment", p)
        if not 0 <= self.sigma_min <= self.sigma_max:
            raise ValueError(
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
        return upstream, (chosen, sigmas, spec.roi)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        chosen, sigmas, roi = ctx
        array = batch[self.array]
        data = blur_sections(array.data, chosen, sigmas, self.axis, array.spec.roi.dims)
        batch[self.array] = Array(data, array.spec, array.attrs).crop(roi, copy=False)
        return batch
