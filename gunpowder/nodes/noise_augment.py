from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..spec import ArrayKey
from ..transforms.augment_intensity import add_noise, value_range
from ._args import bad_argument, probability
from ._intensity import _check_p, _check_range, _float_data, _OneArray


def _check_noise_kwargs(mode: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The mode's parameters, each checked: var >= 0, amount and salt_vs_pepper in [0, 1]."""
    node = "NoiseAugment"
    if "var" in kwargs:
        try:
            ok = bool(np.isfinite(kwargs["var"]) and kwargs["var"] >= 0)
        except TypeError:
            ok = False
        if not ok:
            raise bad_argument(node, "var", "a variance >= 0", kwargs["var"])
    if "mean" in kwargs:
        try:
            ok = bool(np.isfinite(kwargs["mean"]))
        except TypeError:
            ok = False
        if not ok:
            raise bad_argument(node, "mean", "a finite number", kwargs["mean"])
    for arg in ("amount", "salt_vs_pepper"):
        if arg in kwargs:
            probability(node, arg, kwargs[arg])
    return kwargs


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
        self.kwargs = _check_noise_kwargs(mode, kwargs)
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
        data_range = value_range(data)  # one pass, shared by the check and the kernel
        _check_range(self.name, self.array, data, low=-1.0, value=data_range)
        out = add_noise(
            data, self.mode, ctx, clip=self.clip, data_range=data_range, **dict(self.kwargs)
        )
        batch[self.array] = Array(out, array.spec, array.attrs)
        return batch
