"""Pictures for notebooks and reports: centre sections of a batch, and the loss curve.

Raw is grey, labels get one colour per id, affinities (or any 2-3 channel array) are RGB and
single-channel predictions grey. Panels use world coordinates (nm), so arrays of different
sizes (inputs, smaller outputs of valid convolutions) line up. Uses matplotlib's object API
(no pyplot), so it works headless and in threads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .batch import Array, Batch
from .figures import new_figure

KINDS = ("raw", "labels", "affinities", "prediction")


def labels_to_rgb(labels: np.ndarray, background: int | None = 0) -> np.ndarray:
    """An RGB image (float, last axis 3) with a fixed pseudo-random colour per label id."""
    ids = np.asarray(labels).astype(np.uint64)
    h = ids * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    channels = [((h >> np.uint64(8 * c)) & np.uint64(0xFF)).astype(np.float32) for c in range(3)]
    rgb = 0.25 + 0.75 * np.stack(channels, axis=-1) / 255.0
    if background is not None:
        rgb[ids == np.uint64(background)] = 0.0
    return rgb


def affinities_to_rgb(affinities: np.ndarray) -> np.ndarray:
    """Channels-first (C, ...) values in [0, 1] as an RGB image (..., 3): channel i is colour i."""
    affs = np.asarray(affinities, dtype=np.float32)
    channels = [affs[i] if i < affs.shape[0] else np.zeros_like(affs[0]) for i in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def guess_kind(array: Array) -> str:
    """'labels' for integer ids, 'affinities' for 2+ channels, else 'raw'."""
    data = _channels(array)
    if data.ndim > array.spec.roi.dims and data.shape[0] > 1:
        return "affinities"
    dtype = data.dtype
    # uint8 is how raw EM is stored; wider integers are ids
    return "labels" if np.issubdtype(dtype, np.integer) and dtype.itemsize > 1 else "raw"


def _channels(array: Array) -> np.ndarray:
    """The data with leading size-1 axes dropped and at most one channel axis left."""
    data = np.asarray(array.data)
    dims = array.spec.roi.dims if array.spec.roi is not None else data.ndim
    while data.ndim > dims + 1 or (data.ndim > dims and data.shape[0] == 1):
        data = data[0]
    return data


def section(
    array: Array, z: int | None = None
) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """The 2D section of a 3D (or 2D) array at world coordinate `z` (default: its centre).

    Returns (data with an optional leading channel axis, extent (x0, x1, y1, y0) in world
    units), or None if `z` is outside the array.
    """
    data = _channels(array)
    roi, vs = array.spec.roi, array.spec.voxel_size
    if roi.dims == 3:
        z = roi.center[0] if z is None else z
        index = (z - roi.begin[0]) // vs[0]
        if not 0 <= index < roi.shape[0] // vs[0]:
            return None
        data = data[..., index, :, :]
    elif roi.dims != 2:
        raise ValueError(f"can only plot 2D or 3D arrays, got a {roi.dims}D ROI {roi}")
    y0, x0 = roi.begin[-2:]
    y1, x1 = roi.end[-2:]
    return data, (x0, x1, y1, y0)


def show_array(
    ax: Axes, array: Array, kind: str | None = None, z: int | None = None, title: str = ""
) -> None:
    """Draw the section of `array` at world `z` on `ax`, placed in world coordinates."""
    kind = kind or guess_kind(array)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    cut = section(array, z)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if cut is None:
        ax.text(0.5, 0.5, "outside", ha="center", va="center", transform=ax.transAxes)
        return
    data, extent = cut
    if kind == "labels":
        ax.imshow(labels_to_rgb(data), extent=extent, interpolation="nearest")
    elif kind == "affinities" and data.ndim == 3:
        ax.imshow(affinities_to_rgb(data), extent=extent, interpolation="nearest")
    else:
        image = data if data.ndim == 2 else data[0]
        vmin, vmax = (0.0, 1.0) if kind == "prediction" else (None, None)
        ax.imshow(image, cmap="gray", extent=extent, vmin=vmin, vmax=vmax, interpolation="nearest")


def plot_batch(
    batch: Batch,
    keys: Sequence[Any] | None = None,
    kinds: Mapping[Any, str] | None = None,
    z: int | None = None,
    filename: str | os.PathLike | None = None,
    title: str | None = None,
    panel_size: float = 3.0,
) -> Figure:
    """A row of centre sections, one per array (default: all spatial arrays of `batch`).

    `kinds` overrides the guessed kind per key ("raw", "labels", "affinities", "prediction");
    `z` is the world coordinate of the section (default: centre of the first array).
    With `filename` the figure is also saved (PNG by extension).
    """
    keys = (
        list(keys)
        if keys is not None
        else [
            k for k, a in batch.arrays.items() if not a.spec.nonspatial and a.spec.roi is not None
        ]
    )
    if not keys:
        raise ValueError("plot_batch: no spatial arrays to plot")
    kinds = dict(kinds or {})
    arrays = [batch[k] for k in keys]
    if z is None and arrays[0].spec.roi.dims == 3:
        z = arrays[0].spec.roi.center[0]
    fig = new_figure(figsize=(panel_size * len(keys), panel_size + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    total = arrays[0].spec.roi
    for a in arrays[1:]:
        total = total.union(a.spec.roi)
    for ax, key, array in zip(axes, keys, arrays):
        show_array(ax, array, kinds.get(key), z, title=str(key))
        ax.set_xlim(total.begin[-1], total.end[-1])
        ax.set_ylim(total.end[-2], total.begin[-2])
    if title is None and batch.iteration is not None:
        title = f"iteration {batch.iteration}"
        if batch.loss is not None:
            title += f", loss {batch.loss:.4g}"
    if title:
        fig.suptitle(title)
    if filename is not None:
        fig.savefig(filename, dpi=100)
    return fig


def read_loss_log(path: str | os.PathLike) -> dict[str, list[float]]:
    """The columns of a training CSV (iteration, loss, seconds) as lists."""
    columns: dict[str, list[float]] = {"iteration": [], "loss": [], "seconds": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            columns["iteration"].append(int(row["iteration"]))
            columns["loss"].append(float(row["loss"]))
            columns["seconds"].append(float(row.get("seconds") or "nan"))
    return columns


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """The mean over the last `window` values at each position (shorter at the start)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - window, 0)
    return (cumulative[idx] - cumulative[lo]) / (idx - lo)


def show_loss(
    ax: Axes, iterations: Sequence[int], losses: Sequence[float], smooth: int | None = None
) -> None:
    """Draw a loss curve (raw values faint, moving average bold, log scale if positive)."""
    iterations = np.asarray(iterations)
    losses = np.asarray(losses, dtype=np.float64)
    window = smooth if smooth is not None else max(1, len(losses) // 50)
    ax.plot(iterations, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
    if window > 1:
        ax.plot(
            iterations,
            moving_average(losses, window),
            color="tab:blue",
            linewidth=1.8,
            label=f"mean of {window}",
        )
        ax.legend(fontsize=8)
    if losses.size and np.all(losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)


def plot_loss(
    log: str | os.PathLike | Mapping[str, Sequence[float]],
    filename: str | os.PathLike | None = None,
    smooth: int | None = None,
) -> Figure:
    """The loss curve from a training CSV (written by `gunpowder.torch.Train`) or columns."""
    columns = log if isinstance(log, Mapping) else read_loss_log(log)
    fig = new_figure(figsize=(6, 4), layout="constrained")
    show_loss(fig.subplots(), columns["iteration"], columns["loss"], smooth)
    if filename is not None:
        fig.savefig(filename, dpi=100)
    return fig
