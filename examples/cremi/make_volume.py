"""A CREMI-like EM volume: neuron-like labels running along z, dark membranes, organelles, noise.

Used by the example when no real CREMI file is given. Neurons are 2D Voronoi cells whose seeds
drift slowly from section to section, with boundaries bent by a smooth random field; the raw
image is bright cytoplasm, dark membranes along label changes, dark blobs and Gaussian noise.
Written as HDF5 with CREMI's dataset names and `resolution`/`offset` attributes (40×4×4 nm).

    python examples/cremi/make_volume.py out.hdf --shape 40 256 256 --seed 1
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

RESOLUTION = (40, 4, 4)
RAW_DATASET = "volumes/raw"
LABELS_DATASET = "volumes/labels/neuron_ids"


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: Sequence[float]
) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-8)


def make_labels(
    shape: Sequence[int], rng: np.random.Generator, cell_size: float = 28.0, wobble: float = 6.0
) -> np.ndarray:
    """Neuron ids (uint64, ≥ 1): drifting Voronoi cells of about `cell_size` voxels in-plane."""
    z, y, x = (int(s) for s in shape)
    margin = 2 * cell_size
    area = (y + 2 * margin) * (x + 2 * margin)
    n = max(2, int(area / cell_size**2))
    seeds = rng.uniform([-margin, -margin], [y + margin, x + margin], size=(n, 2))
    drift = rng.normal(0.0, 0.6, size=(n, 2))  # voxels per section
    yy, xx = np.mgrid[0:y, 0:x].astype(np.float32)
    warp = wobble * _smooth_field(rng, (2, z, y, x), (0, 2.0, 8.0, 8.0))
    labels = np.empty((z, y, x), dtype=np.uint64)
    for k in range(z):
        positions = seeds + drift * k + rng.normal(0.0, 0.3, size=(n, 2))
        tree = cKDTree(positions)
        points = np.stack([(yy + warp[0, k]).ravel(), (xx + warp[1, k]).ravel()], axis=1)
        _, nearest = tree.query(points)
        labels[k] = nearest.reshape(y, x) + 1
    return labels


def membranes(labels: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Voxels next to an in-plane label change, grown by `thickness - 1` in-plane."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:, :] |= labels[:, 1:, :] != labels[:, :-1, :]
    edge[:, :-1, :] |= labels[:, 1:, :] != labels[:, :-1, :]
    edge[:, :, 1:] |= labels[:, :, 1:] != labels[:, :, :-1]
    edge[:, :, :-1] |= labels[:, :, 1:] != labels[:, :, :-1]
    if thickness > 1:
        structure = np.zeros((1, 3, 3), dtype=bool)
        structure[0, 1, :] = structure[0, :, 1] = True
        edge = ndimage.binary_dilation(edge, structure, iterations=thickness - 1)
    return edge


def make_raw(labels: np.ndarray, rng: np.random.Generator, noise: float = 0.08) -> np.ndarray:
    """EM-like uint8 intensities for `labels`: cytoplasm, membranes, organelles, blur, noise."""
    ids = int(labels.max()) + 1
    brightness = rng.uniform(0.55, 0.8, size=ids).astype(np.float32)
    raw = brightness[labels]
    raw += 0.05 * _smooth_field(rng, labels.shape, (0.5, 3.0, 3.0))  # texture
    blobs = _smooth_field(rng, labels.shape, (0.7, 2.5, 2.5)) > 2.3  # organelles
    raw[blobs] -= 0.25
    raw[membranes(labels, thickness=2)] = 0.18
    raw = ndimage.gaussian_filter(raw, (0.0, 1.0, 1.0))
    raw += rng.normal(0.0, noise, size=raw.shape).astype(np.float32)
    return (np.clip(raw, 0.0, 1.0) * 255).astype(np.uint8)


def make_volume(
    shape: Sequence[int] = (40, 256, 256), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(raw uint8, neuron_ids uint64) of `shape` voxels (z, y, x), a pure function of `seed`."""
    rng = np.random.default_rng(seed)
    labels = make_labels(shape, rng)
    return make_raw(labels, rng), labels


def write_cremi(
    path: str | Path,
    raw: np.ndarray,
    labels: np.ndarray,
    resolution: Sequence[int] = RESOLUTION,
    offset: Sequence[int] = (0, 0, 0),
) -> Path:
    """Write raw and labels as a CREMI-style HDF5 file (dataset names and attributes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, data in ((RAW_DATASET, raw), (LABELS_DATASET, labels)):
            ds = f.create_dataset(name, data=data, chunks=True, compression="gzip")
            ds.attrs["resolution"] = tuple(int(r) for r in resolution)
            ds.attrs["offset"] = tuple(int(o) for o in offset)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("output", help="HDF5 file to write")
    parser.add_argument(
        "--shape", type=int, nargs=3, default=(40, 256, 256), metavar=("Z", "Y", "X")
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    raw, labels = make_volume(args.shape, args.seed)
    path = write_cremi(args.output, raw, labels)
    print(f"wrote {path}: raw {raw.shape} {raw.dtype}, {len(np.unique(labels))} neurons")


if __name__ == "__main__":
    main()
