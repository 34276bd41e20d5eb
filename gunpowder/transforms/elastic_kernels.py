"""Numba kernels of the elastic warp: sample an array where a coarse coordinate grid says.

The coarse grid holds, at regularly spaced nodes, the source coordinate (in the source array's
voxel indices) of each node; the kernels upsample it linearly on the fly, row by row, add a
per-section shift and sample the source trilinearly or by nearest neighbour. Nothing dense is
ever built besides the output. All kernels work on 3D (channels, z, y, x) data.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def _coarse_row(field, kz, tz, ky, ty, k0, k1, row):  # pragma: no cover - compiled
    """Bilinear (z, y) interpolation of the coarse field's nodes k0..k1 along x, into `row`."""
    for d in range(3):
        for k in range(k0, k1):
            a00 = field[d, kz, ky, k]
            a01 = field[d, kz, ky + 1, k]
            a10 = field[d, kz + 1, ky, k]
            a11 = field[d, kz + 1, ky + 1, k]
            a0 = a00 + ty * (a01 - a00)
            a1 = a10 + ty * (a11 - a10)
            row[d, k] = a0 + tz * (a1 - a0)


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def _border_sample(src, c, pz, py, px):  # pragma: no cover - compiled
    """Trilinear sample near or outside the border: 0 beyond half a voxel, else clamped."""
    C, Z, Y, X = src.shape
    if not (
        pz >= -0.5
        and pz <= Z - 0.5
        and py >= -0.5
        and py <= Y - 0.5
        and px >= -0.5
        and px <= X - 0.5
    ):
        return 0.0
    fz = math.floor(pz)
    fy = math.floor(py)
    fx = math.floor(px)
    dz = pz - fz
    dy = py - fy
    dx = px - fx
    z0 = min(max(int(fz), 0), Z - 1)
    z1 = min(max(int(fz) + 1, 0), Z - 1)
    y0 = min(max(int(fy), 0), Y - 1)
    y1 = min(max(int(fy) + 1, 0), Y - 1)
    x0 = min(max(int(fx), 0), X - 1)
    x1 = min(max(int(fx) + 1, 0), X - 1)
    a00 = src[c, z0, y0, x0] + dx * (src[c, z0, y0, x1] - src[c, z0, y0, x0])
    a01 = src[c, z0, y1, x0] + dx * (src[c, z0, y1, x1] - src[c, z0, y1, x0])
    a10 = src[c, z1, y0, x0] + dx * (src[c, z1, y0, x1] - src[c, z1, y0, x0])
    a11 = src[c, z1, y1, x0] + dx * (src[c, z1, y1, x1] - src[c, z1, y1, x0])
    b0 = a00 + dy * (a01 - a00)
    b1 = a10 + dy * (a11 - a10)
    return b0 + dz * (b1 - b0)


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def warp_linear(src, out, field, iz, wz, iy, wy, ix, wx, shift):  # pragma: no cover - compiled
    """Trilinear warp of `src` (C, Z, Y, X) into `out` (C, nz, ny, nx).

    `field` (3, CZ, CY, CX) float32: source voxel coordinates at the coarse nodes. Output voxel
    (z, y, x) lies in coarse cell (iz[z], iy[y], ix[x]) at fractions (wz[z], wy[y], wx[x]);
    `shift[z]` (dy, dx) is added to its source coordinate. Points more than half a voxel
    outside the source read 0; within that half voxel the border value is repeated. A z
    coordinate within 1e-4 of a section is read from that section alone (bilinear), which
    keeps section-aligned warps exact and fast.
    """
    C, Z, Y, X = src.shape
    nz, ny, nx = out.shape[1], out.shape[2], out.shape[3]
    k0 = ix[0]
    k1 = ix[nx - 1] + 2
    row = np.empty((3, field.shape[3]), dtype=np.float32)
    pzs = np.empty(nx, dtype=np.float32)
    pys = np.empty(nx, dtype=np.float32)
    pxs = np.empty(nx, dtype=np.float32)
    zmax = np.float32(Z - 1)
    ymax = np.float32(Y - 1)
    xmax = np.float32(X - 1)
    snap = np.float32(1e-4)
    for z in range(nz):
        sy = shift[z, 0]
        sx = shift[z, 1]
        for y in range(ny):
            _coarse_row(field, iz[z], wz[z], iy[y], wy[y], k0, k1, row)
            for x in range(nx):
                k = ix[x]
                t = wx[x]
                pzs[x] = row[0, k] + t * (row[0, k + 1] - row[0, k])
                pys[x] = row[1, k] + t * (row[1, k + 1] - row[1, k]) + sy
                pxs[x] = row[2, k] + t * (row[2, k + 1] - row[2, k]) + sx
            for x in range(nx):
                pz = pzs[x]
                py = pys[x]
                px = pxs[x]
                if not (pz >= 0 and py >= 0 and px >= 0 and pz <= zmax and py < ymax and px < xmax):
                    for c in range(C):
                        out[c, z, y, x] = _border_sample(src, c, pz, py, px)
                    continue
                z0 = int(pz)
                y0 = int(py)
                x0 = int(px)
                dz = pz - z0
                dy = py - y0
                dx = px - x0
                if dz > 1 - snap and z0 + 1 <= Z - 1:
                    z0 += 1
                    dz = 0
                if dz < snap:
                    for c in range(C):
                        v00 = src[c, z0, y0, x0]
                        v01 = src[c, z0, y0, x0 + 1]
                        v10 = src[c, z0, y0 + 1, x0]
                        v11 = src[c, z0, y0 + 1, x0 + 1]
                        a0 = v00 + dx * (v01 - v00)
                        a1 = v10 + dx * (v11 - v10)
                        out[c, z, y, x] = a0 + dy * (a1 - a0)
                elif z0 + 1 <= Z - 1:
                    for c in range(C):
                        v000 = src[c, z0, y0, x0]
                        v001 = src[c, z0, y0, x0 + 1]
                        v010 = src[c, z0, y0 + 1, x0]
                        v011 = src[c, z0, y0 + 1, x0 + 1]
                        v100 = src[c, z0 + 1, y0, x0]
                        v101 = src[c, z0 + 1, y0, x0 + 1]
                        v110 = src[c, z0 + 1, y0 + 1, x0]
                        v111 = src[c, z0 + 1, y0 + 1, x0 + 1]
                        a00 = v000 + dx * (v001 - v000)
                        a01 = v010 + dx * (v011 - v010)
                        a10 = v100 + dx * (v101 - v100)
                        a11 = v110 + dx * (v111 - v110)
                        b0 = a00 + dy * (a01 - a00)
                        b1 = a10 + dy * (a11 - a10)
                        out[c, z, y, x] = b0 + dz * (b1 - b0)
                else:
                    for c in range(C):
                        out[c, z, y, x] = _border_sample(src, c, pz, py, px)


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def nearest_indices(field, iz, wz, iy, wy, ix, wx, shift, Z, Y, X):  # pragma: no cover
    """Flat index into a (Z, Y, X) source of the nearest voxel of each output voxel, -1 outside.

    Same geometry arguments as `warp_linear`; returns an int64 (nz, ny, nx) array, so one
    coordinate computation serves every nearest-neighbour array of the same grid.
    """
    nz, ny, nx = iz.shape[0], iy.shape[0], ix.shape[0]
    out = np.empty((nz, ny, nx), dtype=np.int64)
    k0 = ix[0]
    k1 = ix[nx - 1] + 2
    row = np.empty((3, field.shape[3]), dtype=np.float32)
    for z in range(nz):
        sy = shift[z, 0]
        sx = shift[z, 1]
        for y in range(ny):
            _coarse_row(field, iz[z], wz[z], iy[y], wy[y], k0, k1, row)
            for x in range(nx):
                k = ix[x]
                t = wx[x]
                pz = row[0, k] + t * (row[0, k + 1] - row[0, k])
                py = row[1, k] + t * (row[1, k + 1] - row[1, k]) + sy
                px = row[2, k] + t * (row[2, k + 1] - row[2, k]) + sx
                jz = int(math.floor(pz + 0.5))
                jy = int(math.floor(py + 0.5))
                jx = int(math.floor(px + 0.5))
                if jz < 0 or jz >= Z or jy < 0 or jy >= Y or jx < 0 or jx >= X:
                    out[z, y, x] = -1
                else:
                    out[z, y, x] = (jz * Y + jy) * X + jx
    return out


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def dense_coordinates(field, iz, wz, iy, wy, ix, wx, shift):  # pragma: no cover - compiled
    """The source coordinate (3, nz, ny, nx) of every output voxel, as the warp kernels see it.

    For tests and diagnostics; the warps never build it.
    """
    nz, ny, nx = iz.shape[0], iy.shape[0], ix.shape[0]
    out = np.empty((3, nz, ny, nx), dtype=np.float32)
    k0 = ix[0]
    k1 = ix[nx - 1] + 2
    row = np.empty((3, field.shape[3]), dtype=np.float32)
    for z in range(nz):
        for y in range(ny):
            _coarse_row(field, iz[z], wz[z], iy[y], wy[y], k0, k1, row)
            for x in range(nx):
                k = ix[x]
                t = wx[x]
                out[0, z, y, x] = row[0, k] + t * (row[0, k + 1] - row[0, k])
                out[1, z, y, x] = row[1, k] + t * (row[1, k + 1] - row[1, k]) + shift[z, 0]
                out[2, z, y, x] = row[2, k] + t * (row[2, k + 1] - row[2, k]) + shift[z, 1]
    return out


def gather(src: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`src` (C, Z, Y, X) read at flat spatial `index` (nz, ny, nx; -1 reads 0): (C, nz, ny, nx)."""
    flat = src.reshape(src.shape[0], -1)
    outside = index < 0
    if outside.any():
        out = flat[:, np.where(outside, 0, index)]
        out[:, outside] = 0
    else:
        out = flat[:, index]
    return out
