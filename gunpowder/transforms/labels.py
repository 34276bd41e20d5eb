"""Pure numpy kernels that turn label volumes into training targets.

Affinities, affinity masks, grown boundaries, class-balancing weights, excluded labels,
connected-component relabelling and signed boundary distances. They know nothing of keys or
ROIs: the nodes in `gunpowder.nodes.labels` map those onto these functions. Spatial axes are
always the *last* axes of an array (channels first), as everywhere in gunpowder.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import edt as _edt
import fastremap
import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# ------------------------------------------------------------------------------------------
# affinities


def as_neighborhood(neighborhood: Any) -> np.ndarray:
    """The offsets as an (n, dims) int array; raises ValueError if that is not what it is."""
    nh = np.asarray(neighborhood)
    if nh.ndim != 2 or nh.shape[0] == 0 or nh.shape[1] == 0:
        raise ValueError(
            f"an affinity neighborhood is a non-empty list of offsets of equal length, "
            f"got {neighborhood!r}"
        )
    if not np.issubdtype(nh.dtype, np.integer):
        if not np.all(np.equal(np.mod(nh, 1), 0)):
            raise ValueError(f"affinity offsets must be whole voxels, got {neighborhood!r}")
        nh = nh.astype(np.int64)
    return nh.astype(np.int64)


def affinity_context(neighborhood: Any) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of context (neg, pos) an affinity output needs before and after it, per axis.

    For the offset n, the affinity at p looks at p + n, so negative offsets need context
    before the output and positive offsets after it.
    """
    nh = as_neighborhood(neighborhood)
    neg = np.maximum(0, -nh.min(axis=0))
    pos = np.maximum(0, nh.max(axis=0))
    return neg, pos


def _pair_slices(
    out_shape: Sequence[int], neg: np.ndarray, offset: np.ndarray
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices into the context array for p (the voxel) and p + offset (its neighbour)."""
    here = tuple(slice(int(b), int(b) + s) for b, s in zip(neg, out_shape))
    there = tuple(slice(int(b + o), int(b + o) + s) for b, o, s in zip(neg, offset, out_shape))
    return (Ellipsis,) + here, (Ellipsis,) + there


def _output_shape(shape: Sequence[int], neg: np.ndarray, pos: np.ndarray) -> tuple[int, ...]:
    dims = len(neg)
    spatial = np.asarray(shape[-dims:])
    out = spatial - neg - pos
    if np.any(out < 0):
        raise ValueError(
            f"array of spatial shape {tuple(spatial)} is too small for affinity offsets that need "
            f"{tuple(neg)} voxels of context before and {tuple(pos)} after"
        )
    return tuple(int(s) for s in out)


def seg_to_affinities(labels: np.ndarray, neighborhood: Any, dtype: Any = np.uint8) -> np.ndarray:
    """Affinities of a label volume: channel i at p is 1 iff labels[p] == labels[p+n_i] != 0.

    `labels` must include the context the offsets need (`affinity_context`): the output covers
    the inner part, shape (len(neighborhood),) + spatial shape - neg - pos. Offsets index the
    last len(offset) axes of `labels`; p is in output coordinates shifted by `neg`.
    """
    nh = as_neighborhood(neighborhood)
    neg, pos = affinity_context(nh)
    if labels.ndim < nh.shape[1]:
        raise ValueError(
            f"labels with {labels.ndim} axes can not take {nh.shape[1]}D affinity offsets"
        )
    out_shape = _output_shape(labels.shape, neg, pos)
    lead = labels.shape[: labels.ndim - nh.shape[1]]
    affs = np.empty((len(nh),) + lead + out_shape, dtype=dtype)
    here, _ = _pair_slices(out_shape, neg, np.zeros_like(neg))
    foreground = labels[here] != 0
    equal = np.empty(lead + out_shape, dtype=bool)
    for i, offset in enumerate(nh):
        a, b = _pair_slices(out_shape, neg, offset)
        np.equal(labels[a], labels[b], out=equal)
        np.logical_and(equal, foreground, out=equal)
        affs[i] = equal
    return affs


def mask_to_affinity_mask(
    mask: np.ndarray, neighborhood: Any, dtype: Any = np.uint8, both: bool = True
) -> np.ndarray:
    """Per offset: 1 iff mask is non-zero at both p and p+n (`both`) or at either (not `both`).

    Same layout and context convention as `seg_to_affinities`.
    """
    nh = as_neighborhood(neighborhood)
    neg, pos = affinity_context(nh)
    out_shape = _output_shape(mask.shape, neg, pos)
    lead = mask.shape[: mask.ndim - nh.shape[1]]
    nonzero = mask != 0
    out = np.empty((len(nh),) + lead + out_shape, dtype=dtype)
    combine = np.logical_and if both else np.logical_or
    buf = np.empty(lead + out_shape, dtype=bool)
    for i, offset in enumerate(nh):
        a, b = _pair_slices(out_shape, neg, offset)
        combine(nonzero[a], nonzero[b], out=buf)
        out[i] = buf
    return out


def compute_affinities(
    labels: np.ndarray,
    neighborhood: Any,
    labels_mask: np.ndarray | None = None,
    unlabelled: np.ndarray | None = None,
    dtype: Any = np.uint8,
    with_mask: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Affinities and their mask, as gunpowder 1.x's AddAffinities defines them.

    - affinity (p, n) = 1 iff labels[p] == labels[p+n] != 0, and 0 wherever p or p+n is
      unlabelled (`unlabelled` == 0);
    - mask (p, n) = 0 where p or p+n is masked out (`labels_mask` == 0) or where *both* p and
      p+n are unlabelled (affinities from labelled to unlabelled voxels are known negatives).
    All arrays include the context of `affinity_context`; returns (affinities, mask or None).
    """
    affs = seg_to_affinities(labels, neighborhood, dtype)
    if unlabelled is not None:
        _check_same_shape(labels, unlabelled, "unlabelled")
        either_labelled = mask_to_affinity_mask(unlabelled, neighborhood, bool, both=False)
        both_labelled = mask_to_affinity_mask(unlabelled, neighborhood, bool, both=True)
        affs *= both_labelled
    if not with_mask:
        return affs, None
    mask = np.ones(affs.shape, dtype=dtype)
    if labels_mask is not None:
        _check_same_shape(labels, labels_mask, "labels_mask")
        mask = mask_to_affinity_mask(labels_mask, neighborhood, dtype, both=True)
    if unlabelled is not None:
        mask *= either_labelled
    return affs, mask


def _check_same_shape(labels: np.ndarray, other: np.ndarray, name: str) -> None:
    if other.shape != labels.shape:
        raise ValueError(f"{name} has shape {other.shape}, labels have shape {labels.shape}")


# ------------------------------------------------------------------------------------------
# boundaries


def _shifted_pairs(
    shape: Sequence[int], offset: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices (a, b) with b = a + offset, both inside `shape` (spatial, last axes)."""
    a, b = [], []
    for s, o in zip(shape, offset):
        n = max(0, s - abs(o))  # empty when the offset reaches past the array
        a.append(slice(max(0, -o), max(0, -o) + n))
        b.append(slice(max(0, o), max(0, o) + n))
    return (Ellipsis,) + tuple(a), (Ellipsis,) + tuple(b)


def _half_ball(dims: int, axes: Sequence[int], radius: int) -> list[tuple[int, ...]]:
    """Offsets within L1 distance `radius` along `axes`, one of each ±pair."""
    offsets = []
    ranges = [range(-radius, radius + 1) if d in axes else range(0, 1) for d in range(dims)]
    for o in itertools.product(*ranges):
        if 0 < sum(abs(v) for v in o) <= radius and next(v for v in o if v != 0) > 0:
            offsets.append(o)
    return offsets


def grow_boundary(
    labels: np.ndarray,
    steps: int = 1,
    background: int = 0,
    mask: np.ndarray | None = None,
    axes: Sequence[int] | None = None,
) -> np.ndarray:
    """Labels with `background` written wherever two regions are within `steps` voxels.

    A voxel p (not background, not masked out) becomes `background` iff some voxel q within
    L1 distance `steps` along `axes` (default: all) has a different label and is not masked
    out (`mask` == 0 marks unknown regions). This is 1.x's per-label binary erosion with a
    cross, border value 1 and masked voxels counted as part of every label. The array border
    is not a boundary; masked-out voxels are left as they are. Returns a new array.
    """
    if steps < 0:
        raise ValueError(f"steps must not be negative, got {steps}")
    dims = labels.ndim
    axes = tuple(range(dims)) if axes is None else tuple(a % dims for a in axes)
    out = labels.copy()
    if steps == 0 or not axes or labels.size == 0:
        return out
    if mask is not None:
        _check_same_shape(labels, mask, "mask")
    if mask is None:
        # p is eroded iff it lies within steps-1 of a voxel that touches a different label
        touches = np.zeros(labels.shape, dtype=bool)
        for axis in axes:
            offset = tuple(1 if d == axis else 0 for d in range(dims))
            a, b = _shifted_pairs(labels.shape, offset)
            differ = labels[a] != labels[b]
            touches[a] |= differ
            touches[b] |= differ
        if steps > 1:
            structure = np.zeros((3,) * dims, dtype=bool)
            structure[(1,) * dims] = True
            for axis in axes:
                idx = [1] * dims
                for v in (0, 2):
                    idx[axis] = v
                    structure[tuple(idx)] = True
            touches = ndimage.binary_dilation(touches, structure, iterations=steps - 1)
        eroded = touches
    else:
        known = mask != 0
        eroded = np.zeros(labels.shape, dtype=bool)
        for offset in _half_ball(dims, axes, steps):
            a, b = _shifted_pairs(labels.shape, offset)
            differ = labels[a] != labels[b]
            eroded[a] |= differ & known[b]
            eroded[b] |= differ & known[a]
        eroded &= known
    eroded &= labels != background
    out[eroded] = background
    return out


# ------------------------------------------------------------------------------------------
# balancing


def _slabs(shape: Sequence[int], slab: Sequence[int] | None) -> list[tuple[Any, ...]]:
    """The index of each slab: blocks of shape `slab` (-1 or None = the whole axis)."""
    if slab is None:
        return [(Ellipsis,)]
    slab = tuple(slab)
    if len(slab) != len(shape):
        raise ValueError(
            f"slab {slab} has {len(slab)} entries, the labels have shape {tuple(shape)}"
        )
    per_axis = []
    for s, n in zip(slab, shape):
        s = n if s is None or s == -1 else int(s)
        if s <= 0:
            raise ValueError(f"slab sizes must be positive or -1, got {slab}")
        per_axis.append([slice(b, b + s) for b in range(0, max(n, 1), max(s, 1))])
    return list(itertools.product(*per_axis))


def _class_weights(
    classes: np.ndarray,
    known: np.ndarray | None,
    num_classes: int,
    clipmin: float | None,
    clipmax: float | None,
) -> np.ndarray:
    """The weight of each class (float32, one more entry for out-of-range) in one slab."""
    total = classes.size if known is None else np.count_nonzero(known)
    counts = np.empty(num_classes, dtype=np.float64)
    for c in range(num_classes):
        is_c = classes == c
        if known is not None:
            is_c &= known
        counts[c] = np.count_nonzero(is_c)
    fractions = counts / total if total else np.zeros(num_classes)
    if clipmin is not None or clipmax is not None:
        fractions = np.clip(fractions, clipmin, clipmax)
    table = np.zeros(num_classes + 1, dtype=np.float32)
    with np.errstate(divide="ignore"):
        table[:num_classes] = np.where(fractions > 0, 1.0 / (num_classes * fractions), 0.0)
    return table


def balance_weights(
    labels: np.ndarray,
    masks: Iterable[np.ndarray] = (),
    num_classes: int = 2,
    clipmin: float | None = 0.05,
    clipmax: float | None = 0.95,
    slab: Sequence[int] | None = None,
) -> np.ndarray:
    """Per-voxel loss weights that balance the classes of `labels` within the masks.

    Within each slab (a block of shape `slab`, -1 = the whole axis; default: the whole array),
    with N the number of voxels where every mask is non-zero and n_c those of class c:
    weight = 1 / (num_classes * clip(n_c / N, clipmin, clipmax)) for a voxel of class c, and
    0 where a mask is 0. Labels inside the masks must lie in [0, num_classes). float32.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    known = None
    for m in masks:
        m = np.asarray(m)
        if m.shape != labels.shape:
            try:
                m = np.broadcast_to(m, labels.shape)
            except ValueError:
                raise ValueError(
                    f"a mask of shape {m.shape} does not fit labels of shape {labels.shape}"
                ) from None
        known = m != 0 if known is None else known & (m != 0)
    classes = labels
    if labels.dtype == np.bool_:
        classes = labels.view(np.uint8)
    elif not np.issubdtype(labels.dtype, np.integer):
        inside = labels if known is None else labels[known]
        if not np.all(np.mod(inside, 1) == 0):
            raise ValueError("labels to balance must be whole numbers (class indices)")
        classes = labels.astype(np.intp)
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        inside = classes if known is None else classes[known]
        if inside.size and (inside.min() < 0 or inside.max() >= num_classes):
            raise ValueError(
                f"labels to balance must lie in [0, {num_classes}) inside the mask, found "
                f"values in [{inside.min()}, {inside.max()}]; set num_classes accordingly"
            )
    out = np.empty(labels.shape, dtype=np.float32)
    for index in _slabs(labels.shape, slab):
        block = classes[index]
        block_known = None if known is None else known[index]
        table = _class_weights(block, block_known, num_classes, clipmin, clipmax)
        # out-of-range values only occur outside the masks, where the weight becomes 0 below
        out[index] = np.take(table, block, mode="clip")
    if known is not None:
        out *= known
    return out


# ------------------------------------------------------------------------------------------
# excluding and relabelling


def exclude_labels(
    labels: np.ndarray, exclude: Iterable[int], background_value: int = 0
) -> np.ndarray:
    """A copy of `labels` with every id in `exclude` replaced by `background_value`."""
    exclude = [int(e) for e in exclude]
    if not exclude:
        return labels.copy()
    return fastremap.mask(labels, exclude, in_place=False, value=background_value)


def include_mask(
    labels: np.ndarray,
    exclude: Iterable[int],
    erode: float = 0,
    voxel_size: Sequence[float] | None = None,
) -> np.ndarray:
    """uint8 mask: 1 on kept labels and on excluded voxels within `erode` (world units) of one.

    This is 1.x's ExcludeLabels ignore mask: excluded regions are ignored except for a rim
    of width `erode` around the kept labels.
    """
    exclude = np.asarray(list(exclude), dtype=labels.dtype)
    keep = ~np.isin(labels, exclude)
    if erode <= 0 or keep.all() or not keep.any():
        return keep.astype(np.uint8)
    distance = distance_to(keep, voxel_size)
    return (distance <= erode).astype(np.uint8)


def distance_to(region: np.ndarray, voxel_size: Sequence[float] | None = None) -> np.ndarray:
    """Euclidean distance (world units) from every voxel to the nearest voxel of `region`."""
    sampling = None if voxel_size is None else tuple(float(v) for v in voxel_size)
    if 1 <= region.ndim <= 3:
        anis = 1.0 if sampling is None else (sampling[0] if region.ndim == 1 else sampling)
        return _edt.edt(np.ascontiguousarray(~region), anisotropy=anis, black_border=False)
    return ndimage.distance_transform_edt(~region, sampling=sampling)


def relabel_connected_components(labels: np.ndarray) -> np.ndarray:
    """Every face-connected region of one non-zero id gets its own id 1..N (raster order).

    0 stays 0. The result has the dtype of `labels`; raises ValueError if N does not fit.
    """
    shape = labels.shape
    n = labels.size
    if n == 0:
        return labels.copy()
    flat_index = np.arange(n, dtype=np.int64).reshape(shape)
    rows, cols = [], []
    for axis in range(labels.ndim):
        offset = tuple(1 if d == axis else 0 for d in range(labels.ndim))
        a, b = _shifted_pairs(shape, offset)
        same = (labels[a] == labels[b]) & (labels[a] != 0)
        rows.append(flat_index[a][same])
        cols.append(flat_index[b][same])
    row = np.concatenate(rows) if rows else np.empty(0, np.int64)
    col = np.concatenate(cols) if cols else np.empty(0, np.int64)
    graph = coo_matrix((np.ones(row.size, dtype=np.int8), (row, col)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    component = component.reshape(shape)
    foreground = labels != 0
    # renumber in raster order of first appearance, skipping background components
    ids = component[foreground]
    _, first = np.unique(ids, return_index=True)
    order = np.argsort(first)
    new_ids = np.empty(order.size, dtype=np.int64)
    new_ids[order] = np.arange(1, order.size + 1)
    _, inverse = np.unique(ids, return_inverse=True)
    count = order.size
    if np.issubdtype(labels.dtype, np.integer) and count > np.iinfo(labels.dtype).max:
        raise ValueError(
            f"{count} connected components do not fit the labels' dtype {labels.dtype}"
        )
    out = np.zeros(shape, dtype=labels.dtype)
    out[foreground] = new_ids[inverse.ravel()]
    return out


# ------------------------------------------------------------------------------------------
# distances


def signed_boundary_distance(
    labels: np.ndarray,
    voxel_size: Sequence[float] | None = None,
    max_distance: float | None = None,
    background: int = 0,
) -> np.ndarray:
    """Signed distance (world units) to the nearest voxel of another label, clipped.

    Positive inside objects (distance to the nearest voxel with a different id, background
    included), negative in the background (minus the distance to the nearest object), centre
    to centre. The array border is not a boundary. Clipped to [-max_distance, max_distance];
    infinite where no boundary exists and `max_distance` is None. float32, 1-3D.
    """
    if not 1 <= labels.ndim <= 3:
        raise ValueError(f"signed_boundary_distance supports 1-3D labels, got {labels.ndim}D")
    vs = (1.0,) * labels.ndim if voxel_size is None else tuple(float(v) for v in voxel_size)
    anis: Any = vs[0] if labels.ndim == 1 else vs
    lab = labels
    if background != 0:
        lab = labels.copy()
        # edt treats 0 as background: swap the roles of 0 and `background`
        zero = labels == 0
        lab[labels == background] = 0
        lab[zero] = background
    data = np.ascontiguousarray(lab)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    elif data.dtype.kind == "i":
        data = data.view(np.dtype(f"u{data.dtype.itemsize}"))
    inside = _edt.edt(data, anisotropy=anis, black_border=False)
    is_bg = data == 0
    outside = _edt.edt(np.ascontiguousarray(is_bg), anisotropy=anis, black_border=False)
    distance = np.where(is_bg, -outside, inside).astype(np.float32)
    if max_distance is not None:
        np.clip(distance, -max_distance, max_distance, out=distance)
    return distance
