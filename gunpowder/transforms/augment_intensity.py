"""Intensity augmentations as pure numpy functions: scale/shift per slab, noise, gamma, blur.

Spatial axes are the last axes of an array; random values come in as arguments or from a
`numpy.random.Generator` passed in, never from global state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import product
from typing import Any

import numpy as np
from scipy import ndimage

from ._jit import njit


def slabs(shape: Sequence[int], slab: Sequence[int] | None) -> Iterator[tuple[Any, ...]]:
    """Index tuples of the blocks of `shape` cut into slabs of `slab` (-1: the whole axis).

    `slab` applies to the last len(slab) axes; None gives a single block.
    """
    shape = tuple(shape)
    if slab is None:
        yield (Ellipsis,)
        return
    slab = tuple(int(s) for s in slab)
    if len(slab) > len(shape):
        raise ValueError(f"slab {slab} has more axes than the array's shape {shape}")
    tail = shape[len(shape) - len(slab) :]
    sizes = [n if s in (-1, 0) or s >= n else s for n, s in zip(tail, slab)]
    starts = [range(0, n, s) for n, s in zip(tail, sizes)]
    for begin in product(*starts):
        yield (Ellipsis,) + tuple(slice(b, b + s) for b, s in zip(begin, sizes))


def count_slabs(shape: Sequence[int], slab: Sequence[int] | None) -> int:
    """How many blocks `slabs(shape, slab)` yields."""
    return sum(1 for _ in slabs(shape, slab))


def scale_shift(
    data: np.ndarray,
    scales: np.ndarray,
    shifts: np.ndarray,
    slab: Sequence[int] | None = None,
    clip: bool = True,
) -> np.ndarray:
    """`mean + (a - mean) * scale + shift` per slab (mean of that slab), optionally clipped
    to [0, 1]; one (scale, shift) per block of `slabs`. A new array of data's dtype."""
    return scale_shift_range(data, scales, shifts, slab, clip)[0]


def scale_shift_range(
    data: np.ndarray,
    scales: np.ndarray,
    shifts: np.ndarray,
    slab: Sequence[int] | None = None,
    clip: bool = True,
) -> tuple[np.ndarray, tuple[float, float]]:
    """`scale_shift` and the (min, max) of the input, in two passes where the slabs are
    whole leading-axis blocks of a float array (views too), else with numpy."""
    blocks = _as_blocks(data, slab)
    if blocks is not None:
        # walk the input in memory order (undo flips, sort axes by stride): a flipped or
        # transposed contiguous array (SimpleAugment's output) becomes contiguous again
        scales = np.asarray(scales, np.float64)
        shifts = np.asarray(shifts, np.float64)
        flips = tuple(a for a in range(4) if blocks.strides[a] < 0)
        if 0 in flips:
            scales, shifts = scales[::-1], shifts[::-1]
        order = [0] + sorted((1, 2, 3), key=lambda a: -abs(blocks.strides[a]))
        walked = np.flip(blocks, flips).transpose(order) if flips else blocks.transpose(order)
        out = np.empty(walked.shape, dtype=data.dtype)
        lo, hi = _scale_shift_blocks(walked, scales, shifts, clip, out)
        out = out.transpose(np.argsort(order))
        if flips:
            out = np.flip(out, flips)
        return out.reshape(data.shape), (lo, hi)
    out = np.empty(data.shape, dtype=data.dtype)
    value = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    for block, scale, shift in zip(slabs(data.shape, slab), scales, shifts):
        a = data[block]
        mean = a.mean(dtype=np.float64)
        np.multiply(a, scale, out=out[block], casting="unsafe")
        out[block] += np.asarray(mean * (1.0 - scale) + shift, dtype=out.dtype)
    if clip:
        np.clip(out, 0, 1, out=out)
    return out, value


def _as_blocks(data: np.ndarray, slab: Sequence[int] | None) -> np.ndarray | None:
    """`data` as a 4D view (blocks, a, b, c) when each slab is a run of whole leading-axis
    slices of a float array with at most 3 axes; else None."""
    if data.dtype not in (np.float32, np.float64) or data.size == 0 or data.ndim > 3:
        return None
    shape = (1,) * (3 - data.ndim) + data.shape
    view = data.reshape(shape) if data.ndim < 3 else data
    if slab is None:
        return view[None]
    slab = tuple(int(s) for s in slab)
    if len(slab) != data.ndim or any(
        s not in (-1, 0) and s < n for s, n in zip(slab[1:], data.shape[1:])
    ):
        return None
    n0 = data.shape[0]
    k = n0 if slab[0] in (-1, 0) or slab[0] >= n0 else slab[0]
    if n0 % k or data.ndim < 3 and slab[0] not in (-1, 0) and k < n0:
        return None
    return view.reshape((n0 // k, k) + view.shape[1:]) if data.ndim == 3 else view[None]


@njit(cache=True, fastmath=True, nogil=True)
def _scale_shift_blocks(blocks, scales, shifts, clip, out):  # pragma: no cover - compiled
    """Per block: mean, then `a * scale + (mean * (1 - scale) + shift)` (clipped to [0, 1]);
    returns the input's (min, max)."""
    n, p, q, r = blocks.shape
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        total = 0.0
        for j in range(p):
            for k in range(q):
                for m in range(r):
                    v = blocks[i, j, k, m]
                    total += v
                    lo = min(lo, v)
                    hi = max(hi, v)
        mean = total / (p * q * r)
        a = scales[i]
        b = mean * (1.0 - a) + shifts[i]
        for j in range(p):
            for k in range(q):
                for m in range(r):
                    v = blocks[i, j, k, m] * a + b
                    if clip:
                        v = min(max(v, 0.0), 1.0)
                    out[i, j, k, m] = v
    return float(lo), float(hi)


def value_range(data: np.ndarray) -> tuple[float, float]:
    """(min, max) of `data` in one pass ((0.0, 0.0) if empty); NaN if it holds a NaN."""
    if data.size == 0:
        return 0.0, 0.0
    if data.dtype in (np.float32, np.float64) and data.ndim <= 4:
        return _min_max(_as_4d(data))
    return float(data.min()), float(data.max())


def _as_4d(data: np.ndarray) -> np.ndarray:
    """A view of `data` (at most 4 axes) with 4 axes, leading ones of length 1 added."""
    return data.reshape((1,) * (4 - data.ndim) + data.shape)


@njit(cache=True, nogil=True)
def _min_max(a):  # pragma: no cover - compiled
    """(min, max) of a 4D float array, any strides; NaN propagates (as numpy's min/max)."""
    lo = a[0, 0, 0, 0]
    hi = lo
    nan = False
    n0, n1, n2, n3 = a.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                for m in range(n3):
                    v = a[i, j, k, m]
                    nan |= v != v
                    lo = min(lo, v)
                    hi = max(hi, v)
    if nan:
        return np.nan, np.nan
    return float(lo), float(hi)


@njit(cache=True, nogil=True)
def _add_gaussian(a, noise, scale, mean, low, clip, out):  # pragma: no cover - compiled
    """out = a + dtype(noise * scale + mean) (the noise term in float64, then rounded to a's
    dtype, as numpy computes `(noise * np.float64(scale) + mean).astype(dtype)`), clipped
    to [low, 1] if `clip`. 4D arrays; `a` may have any strides; no fastmath, so the
    roundings are numpy's."""
    n0, n1, n2, n3 = a.shape
    one = out.dtype.type(1.0)
    lower = out.dtype.type(low)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                for m in range(n3):
                    term = out.dtype.type(np.float64(noise[i, j, k, m]) * scale + mean)
                    v = a[i, j, k, m] + term
                    if clip:
                        # np.clip(v, low, 1): NaN stays NaN
                        v = lower if v < lower else (one if v > one else v)
                    out[i, j, k, m] = v


def add_noise(
    data: np.ndarray,
    mode: str,
    rng: np.random.Generator,
    clip: bool = True,
    *,
    data_range: tuple[float, float] | None = None,
    **kwargs: float,
) -> np.ndarray:
    """`data` (floats in [0, 1] or [-1, 1]) with noise of `mode` (scikit-image's names).

    gaussian (mean=0, var=0.01), speckle (a + a * n, mean=0, var=0.01), poisson (counts at
    2**ceil(log2(#values)) levels), salt, pepper, s&p (amount=0.05, salt_vs_pepper=0.5).
    `clip` keeps the range ([-1, 1] if data has negative values, else [0, 1]).
    `data_range` (min, max) of `data`, if the caller has it (saves a pass over the data).
    """
    if data_range is None:
        data_range = value_range(data)
    low = -1.0 if data.size and data_range[0] < 0 else 0.0
    dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.float32
    a = data.astype(dtype, copy=False)
    mean = float(kwargs.pop("mean", 0.0))
    var = float(kwargs.pop("var", 0.01))
    amount = float(kwargs.pop("amount", 0.05))
    salt_vs_pepper = float(kwargs.pop("salt_vs_pepper", 0.5))
    kwargs.pop("seed", None)
    kwargs.pop("rng", None)
    if kwargs:
        raise TypeError(f"unexpected arguments for {mode!r} noise: {sorted(kwargs)}")
    if mode == "gaussian":
        noise = rng.standard_normal(a.shape, dtype=np.float32)
        if a.ndim <= 4 and a.dtype in (np.float32, np.float64):
            # one fused pass (no float64 temporaries), the same values as the numpy below
            out = np.empty(a.shape, dtype=dtype)
            scale = float(np.sqrt(var))
            _add_gaussian(_as_4d(a), _as_4d(noise), scale, mean, low, clip, _as_4d(out))
            return out
        out = a + (noise * np.sqrt(var) + mean).astype(dtype)
    elif mode == "speckle":
        noise = rng.standard_normal(a.shape, dtype=np.float32) * np.sqrt(var) + mean
        out = a + a * noise.astype(dtype)
    elif mode == "poisson":
        levels = len(np.unique(a))
        levels = 2 ** np.ceil(np.log2(max(levels, 1)))
        shifted = (a + 1.0) / 2.0 if low < 0 else a
        out = (rng.poisson(np.clip(shifted, 0, None) * levels) / levels).astype(dtype)
        if low < 0:
            out = out * 2.0 - 1.0
    elif mode in ("salt", "pepper", "s&p"):
        ratio = {"salt": 1.0, "pepper": 0.0}.get(mode, salt_vs_pepper)
        out = a.copy()
        hit = rng.random(a.shape) < amount
        salt = rng.random(a.shape) < ratio
        out[hit & salt] = 1.0
        out[hit & ~salt] = low
    else:
        raise ValueError(
            f"unknown noise mode {mode!r}: use gaussian, speckle, poisson, salt, pepper or s&p"
        )
    if clip:
        np.clip(out, low, 1.0, out=out)
    return out.astype(dtype, copy=False)


def gamma(data: np.ndarray, value: float) -> np.ndarray:
    """`data ** value` for non-negative intensities (a new array, floats kept)."""
    return np.power(
        data, value, dtype=data.dtype if np.issubdtype(data.dtype, np.floating) else np.float32
    )


def blur_sections(
    data: np.ndarray, sections: Sequence[int], sigmas: Sequence[float], axis: int, spatial_dims: int
) -> np.ndarray:
    """`data` with each listed section (index along spatial `axis`) blurred in its plane by a
    gaussian of the matching sigma (voxels); other sections unchanged. A new array."""
    out = data.copy()
    axis = data.ndim - spatial_dims + axis
    for index, sigma in zip(sections, sigmas):
        section = np.take(data, index, axis=axis)
        lead = data.ndim - spatial_dims
        sig = [0.0] * lead + [float(sigma)] * (spatial_dims - 1)
        blurred = ndimage.gaussian_filter(
            section.astype(np.float32, copy=False), sig, mode="reflect"
        )
        idx: list[Any] = [slice(None)] * data.ndim
        idx[axis] = index
        out[tuple(idx)] = blurred.astype(data.dtype, copy=False)
    return out
