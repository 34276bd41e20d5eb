"""Local shape descriptors (Sheridan et al., Nature Methods 2022), pure numpy/scipy.

For every voxel p of a non-zero segment, the statistics of that segment's voxels q within a
window w(q - p) around p:

- mean offset E[d] (D channels), with d = q - p in world units,
- variances Var[d_i] (D channels) and correlations Cov[d_i, d_j] / sqrt(Var[d_i] Var[d_j])
  for i < j (D(D-1)/2 channels: (0,1), (0,2), (1,2) in 3D),
- size: the window mass sum_q w(q - p) over the segment (1 channel),

so 10 channels in 3D, 6 in 2D. They are normalised to [0, 1] the way the `lsds` package does:
offsets E[d_i] / sigma_i * 0.5 + 0.5 (sphere mode: E[d_i] / sigma_i + 0.5), variances
max(Var, 1e-3) / sigma_i^2, correlations * 0.5 + 0.5, then clipped to [0, 1]; background
(id 0) voxels are 0 in every channel.

Speed: statistics are needed only on the voxels of one segment, so each segment is processed
on its bounding box (within the requested output) grown by the window's radius. All moments
are computed relative to p (moment kernels g(d) d^a), which keeps float32 accurate, and the
separable Gaussian moments share their one-dimensional passes (19 passes for 10 moments in
3D), each pass cropped to what the next needs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

_DTYPE = np.float64  # moments are accumulated in float64 (scipy filters in double anyway)

VARIANCE_FLOOR = 1e-3
"""Variances (world units squared) are floored at this, as in lsds (avoids 0/0 in
correlations of flat or single-voxel segments)."""


def num_channels(dims: int) -> int:
    """Number of descriptor channels for `dims` spatial dimensions (10 in 3D, 6 in 2D)."""
    return 2 * dims + dims * (dims - 1) // 2 + 1


def parse_components(components: str | Sequence[int] | None, dims: int) -> list[int]:
    """Channel indices from lsds' component string ("0129") or a sequence; None = all."""
    n = num_channels(dims)
    if components is None:
        return list(range(n))
    idx = [int(c) for c in components]
    if not idx or any(not 0 <= i < n for i in idx) or sorted(set(idx)) != idx:
        raise ValueError(
            f"components must be ascending distinct channel indices in 0..{n - 1}, "
            f"got {components!r}"
        )
    return idx


def _as_tuple(value: float | Sequence[float], dims: int, name: str) -> tuple[float, ...]:
    if np.isscalar(value):
        return (float(value),) * dims  # type: ignore[arg-type]
    out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    if len(out) != dims:
        raise ValueError(f"{name} has {len(out)} entries for {dims} dimensions")
    return out


def gaussian_radius(sigma_voxels: float, truncate: float) -> int:
    """The radius (voxels) of scipy's truncated Gaussian kernel: int(truncate * sigma + 0.5)."""
    return int(truncate * sigma_voxels + 0.5)


def window_radius(
    sigma: float | Sequence[float],
    voxel_size: Sequence[int],
    mode: str = "gaussian",
    downsample: int = 1,
    truncate: float = 3.0,
    lsds_compatible: bool = True,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """How far (full-resolution voxels, before/after) a descriptor looks along each axis.

    With `downsample` > 1 a voxel takes the statistics of the grid sample at or before it,
    so the reach before includes the distance to that sample.
    """
    dims = len(voxel_size)
    sig = _as_tuple(sigma, dims, "sigma")
    vs_ds = tuple(float(v) * downsample for v in voxel_size)
    sv = tuple(s / v for s, v in zip(sig, vs_ds))
    reach = _reach(sv, vs_ds, mode, truncate, lsds_compatible)
    before = tuple(b * downsample + downsample - 1 for b, _ in reach)
    after = tuple(a * downsample for _, a in reach)
    return before, after


def _reach(
    sv: Sequence[float], vs: Sequence[float], mode: str, truncate: float, lsds_compatible: bool
) -> list[tuple[int, int]]:
    """Per axis, the window's largest negative and positive displacement, in voxels."""
    if mode == "gaussian":
        return [(r, r) for r in (len(_gaussian_kernels(s, 1.0, truncate)[0]) // 2 for s in sv)]
    _, disp = _sphere_window(sv, vs, lsds_compatible)
    return [(len(d) // 2, len(d) // 2) for d in disp]


# ------------------------------------------------------------------------------------------
# windows


def _moment_orders(dims: int, max_order: int) -> list[tuple[int, ...]]:
    """Multi-indices a (one entry per axis) with |a| <= max_order, in a fixed order."""
    return [a for a in itertools.product(range(max_order + 1), repeat=dims) if sum(a) <= max_order]


def _gaussian_kernels(sigma_voxels: float, voxel: float, truncate: float) -> list[np.ndarray]:
    """1D kernels g(d) d^a (a = 0, 1, 2), d in world units, g scipy's normalised Gaussian."""
    if sigma_voxels <= 1e-15:
        g = np.ones(1)
        k = np.zeros(1)
    else:
        r = gaussian_radius(sigma_voxels, truncate)
        k = np.arange(-r, r + 1, dtype=np.float64)
        g = np.exp(-0.5 * k**2 / sigma_voxels**2)
        g /= g.sum()
    d = k * voxel
    return [g, g * d, g * d * d]


def _sphere_window(
    sigma_voxels: Sequence[float], voxel_size: Sequence[float], lsds_compatible: bool
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A ball window as weights over displacements, and the displacements (world units).

    Index j along an axis holds displacement (j - R) voxels, R = len // 2 (odd lengths,
    zero weights where the ball does not reach), ready for `ndimage.correlate`.

    lsds builds the ball on the grid arange(-s, s) per axis (2s points, one short of being
    symmetric) and applies it by convolution, so its window spans displacements
    -(n-1-c) .. c with c = n // 2: off-centre by one voxel for integer s. `lsds_compatible`
    keeps that; otherwise the ball is centred, on the grid -floor(s) .. floor(s). The ball
    is sum_i (k_i / s_i)^2 <= 1 (for equal s this is lsds' sum k_i^2 <= s^2).
    """
    ks, ds = [], []
    for s in sigma_voxels:
        if lsds_compatible:
            k = np.arange(-s, s, dtype=np.float64)
            c = len(k) // 2
            d = c - np.arange(len(k))  # a convolution weighs K[j] at displacement c - j
        else:
            r = int(np.floor(s))
            k = np.arange(-r, r + 1, dtype=np.float64)
            d = np.arange(-r, r + 1)
        ks.append(k)
        ds.append(d)
    grids = np.meshgrid(*ks, indexing="ij")
    ball = sum((g / s) ** 2 for g, s in zip(grids, sigma_voxels)) <= 1.0 + 1e-12
    radius = [int(max(-d.min(), d.max())) for d in ds]
    weights = np.zeros(tuple(2 * r + 1 for r in radius))
    index = np.ix_(*[d + r for d, r in zip(ds, radius)])
    weights[index] = ball
    disp = [np.arange(-r, r + 1) * float(v) for r, v in zip(radius, voxel_size)]
    return weights, disp


# ------------------------------------------------------------------------------------------
# the kernel


def local_shape_descriptor(
    segmentation: np.ndarray,
    sigma: float | Sequence[float],
    voxel_size: Sequence[int] | None = None,
    components: str | Sequence[int] | None = None,
    downsample: int = 1,
    mode: str = "gaussian",
    roi: Sequence[slice] | None = None,
    truncate: float = 3.0,
    lsds_compatible: bool = True,
) -> np.ndarray:
    """The local shape descriptors of `segmentation` (2D or 3D ids), float32, channels first.

    Args:
        segmentation: integer ids; 0 is background (all channels 0 there).
        sigma: the window's size in world units, per axis or one for all: the Gaussian's
            standard deviation, or the sphere's radius.
        voxel_size: world size of a voxel (default 1 per axis).
        components: which channels to return, lsds' string of ascending indices ("0129")
            or a sequence of ints; None for all.
        downsample: compute on every `downsample`-th voxel (counted from index 0) with the
            voxel size scaled, then give each voxel the statistics of its segment at the
            sample at or before it (lsds' scheme). The segmentation is padded with
            background to a multiple of `downsample`.
        mode: "gaussian" or "sphere".
        roi: the region (slices of `segmentation`, full resolution) to compute; default
            all of it. Voxels outside still serve as context.
        truncate: the Gaussian is cut at int(truncate * sigma_voxels + 0.5) voxels (lsds: 3).
        lsds_compatible: sphere mode only: keep lsds' off-centre ball, offsets normalised by
            sigma (not sigma / 0.5) and size clipped to 1 (a raw voxel count), instead of a
            centred ball, the Gaussian's normalisation and size = count / ball volume.

    Returns:
        float32 array (len(components), *roi shape), values in [0, 1].
    """
    seg = np.asarray(segmentation)
    dims = seg.ndim
    if dims not in (2, 3):
        raise ValueError(f"segmentation must be 2D or 3D, got shape {seg.shape}")
    if mode not in ("gaussian", "sphere"):
        raise ValueError(f"mode must be 'gaussian' or 'sphere', got {mode!r}")
    ds = int(downsample)
    if ds < 1:
        raise ValueError(f"downsample must be >= 1, got {downsample!r}")
    vs = _as_tuple(1 if voxel_size is None else voxel_size, dims, "voxel_size")
    sig = _as_tuple(sigma, dims, "sigma")
    if any(s <= 0 for s in sig):
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    channels = parse_components(components, dims)
    if roi is None:
        roi = tuple(slice(0, n) for n in seg.shape)
    roi = tuple(slice(*sl.indices(n)[:2]) for sl, n in zip(roi, seg.shape))
    out_shape = tuple(sl.stop - sl.start for sl in roi)
    out = np.zeros((len(channels),) + out_shape, dtype=np.float32)
    if min(out_shape, default=0) == 0:
        return out

    # downsampled grid: samples at multiples of ds; pad to a multiple of ds
    if ds > 1:
        pad = [(0, (-n) % ds) for n in seg.shape]
        if any(p for _, p in pad):
            seg = np.pad(seg, pad)
        seg_ds = seg[(slice(None, None, ds),) * dims]
    else:
        seg_ds = seg
    vs_ds = tuple(v * ds for v in vs)
    sv = tuple(s / v for s, v in zip(sig, vs_ds))

    need_second = any(dims <= c < num_channels(dims) - 1 for c in channels)
    need_first = need_second or any(c < dims for c in channels)
    max_order = 2 if need_second else (1 if need_first else 0)
    orders = _moment_orders(dims, max_order)

    reach = _reach(sv, vs_ds, mode, truncate, lsds_compatible)
    if mode == "gaussian":
        kernels = [_gaussian_kernels(s, v, truncate) for s, v in zip(sv, vs_ds)]
    else:
        ball, disp = _sphere_window(sv, vs_ds, lsds_compatible)
        grids = np.meshgrid(*disp, indexing="ij")
        weights = {}
        for a in orders:
            w = ball.copy()
            for g, e in zip(grids, a):
                if e:
                    w = w * g**e
            weights[a] = w.astype(_DTYPE)

    # segments present in the output region, with their bounding boxes there
    sub = seg[roi]
    ids, inverse = np.unique(sub, return_inverse=True)
    inverse = inverse.reshape(sub.shape)
    boxes = ndimage.find_objects(inverse.astype(np.int32) + 1)

    for index, (label, box) in enumerate(zip(ids, boxes)):
        if label == 0 or box is None:
            continue
        # full-res box (absolute) and its downsampled cells
        fb = [slice(r.start + b.start, r.start + b.stop) for r, b in zip(roi, box)]
        cb = [slice(b.start // ds, (b.stop - 1) // ds + 1) for b in fb]
        ib = [
            slice(max(c.start - rb, 0), min(c.stop + ra, n))
            for c, (rb, ra), n in zip(cb, reach, seg_ds.shape)
        ]
        mask = (seg_ds[tuple(ib)] == label).astype(_DTYPE)
        valid = [slice(c.start - i.start, c.stop - i.start) for c, i in zip(cb, ib)]
        if mode == "gaussian":
            moments = _gaussian_moments(mask, kernels, orders, valid)
        else:
            moments = {
                a: ndimage.correlate(mask, weights[a], mode="constant")[tuple(valid)]
                for a in orders
            }
        ball_size = None if mode == "gaussian" else float(ball.sum())
        stats = _normalise(moments, dims, sig, channels, mode, lsds_compatible, ball_size)
        if ds > 1:
            for axis in range(dims):
                stats = np.repeat(stats, ds, axis=axis + 1)
            stats = stats[
                (slice(None),)
                + tuple(
                    slice(f.start - c.start * ds, f.stop - c.start * ds) for f, c in zip(fb, cb)
                )
            ]
        where = inverse[box] == index
        target = out[(slice(None),) + box]
        target[:, where] = stats[:, where]
    return out


def _gaussian_moments(
    mask: np.ndarray,
    kernels: list[list[np.ndarray]],
    orders: list[tuple[int, ...]],
    valid: list[slice],
) -> dict[tuple[int, ...], np.ndarray]:
    """sum_d g(d) d^a mask(p + d) for every order a, on the `valid` part of `mask`.

    Axis by axis, each partial order shares its pass, and each pass's result is cropped to
    the valid range of its axis before the next axis is filtered.
    """
    partial: dict[tuple[int, ...], np.ndarray] = {(): mask}
    dims = mask.ndim
    for axis in range(dims):
        nxt: dict[tuple[int, ...], np.ndarray] = {}
        crop = (slice(None),) * axis + (valid[axis],)
        for prefix in {a[:axis] for a in orders}:
            src = partial[prefix]
            for e in sorted({a[axis] for a in orders if a[:axis] == prefix}):
                w = kernels[axis][e].astype(_DTYPE)
                res = ndimage.correlate1d(src, w, axis=axis, mode="constant")
                nxt[prefix + (e,)] = res[crop]
        partial = nxt
    return partial


def _normalise(
    m: dict[tuple[int, ...], np.ndarray],
    dims: int,
    sigma: tuple[float, ...],
    channels: list[int],
    mode: str,
    lsds_compatible: bool,
    ball_size: float | None,
) -> np.ndarray:
    """Moments to the normalised descriptor channels (see the module docstring)."""
    zero = (0,) * dims

    def unit(i: int, j: int | None = None) -> tuple[int, ...]:
        a = [0] * dims
        a[i] += 1
        if j is not None:
            a[j] += 1
        return tuple(a)

    mass = m[zero].astype(_DTYPE)
    empty = mass <= 0
    safe = np.where(empty, _DTYPE(1), mass)
    shape = mass.shape
    out = np.empty((len(channels),) + shape, dtype=_DTYPE)
    n_mean, n_var = dims, 2 * dims
    pairs = [(i, j) for i in range(dims) for j in range(i + 1, dims)]
    mean: list[Any] = [None] * dims
    var: list[Any] = [None] * dims
    if any(c < n_var + len(pairs) for c in channels):
        for i in range(dims):
            if unit(i) in m:
                mu = np.where(empty, 0, m[unit(i)] / safe)
                mean[i] = mu
    if any(n_mean <= c < n_var + len(pairs) for c in channels):
        for i in range(dims):
            v = m[unit(i, i)] / safe - mean[i] ** 2
            var[i] = np.maximum(np.where(empty, 0, v), VARIANCE_FLOOR)
    offset_scale = 1.0 if (mode == "sphere" and lsds_compatible) else 0.5
    for k, c in enumerate(channels):
        if c < n_mean:
            res = mean[c] / sigma[c] * offset_scale + 0.5
        elif c < n_var:
            i = c - n_mean
            res = var[i] / (sigma[i] ** 2)
        elif c < n_var + len(pairs):
            i, j = pairs[c - n_var]
            cov = np.where(empty, 0, m[unit(i, j)] / safe - mean[i] * mean[j])
            res = cov / np.sqrt(var[i] * var[j]) * 0.5 + 0.5
        else:
            if mode == "gaussian":
                res = mass
            elif lsds_compatible:
                res = mass  # a voxel count, clipped below (lsds: 1 inside every segment)
            else:
                res = mass / ball_size
        out[k] = res
    np.clip(out, 0.0, 1.0, out=out)
    return out


__all__ = [
    "VARIANCE_FLOOR",
    "gaussian_radius",
    "local_shape_descriptor",
    "num_channels",
    "parse_components",
    "window_radius",
]
