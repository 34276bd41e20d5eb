"""Numba kernels of the elastic warp: sample an array where a coarse coordinate grid says.

The coarse grid holds, at regularly spaced nodes, the source coordinate (in the source array's
voxel indices) of each node; the kernels upsample it linearly on the fly, row by row, add a
per-section shift and sample the source trilinearly or by nearest neighbour. Nothing dense is
ever built besides the output. All kernels work on 3D (channels, z, y, x) data.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit


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
def _row_coordinates(
    field, iz, wz, iy, wy, ix, wx, shift, z, y, row, pzs, pys, pxs
):  # pragma: no cover - compiled
    """Source coordinates of output row (z, y) into pzs/pys/pxs: the coarse row, then linear
    along x, plus the section's shift (geometry arguments as in `warp_linear`)."""
    nx = ix.shape[0]
    sy = shift[z, 0]
    sx = shift[z, 1]
    _coarse_row(field, iz[z], wz[z], iy[y], wy[y], ix[0], ix[nx - 1] + 2, row)
    for x in range(nx):
        k = ix[x]
        t = wx[x]
        pzs[x] = row[0, k] + t * (row[0, k + 1] - row[0, k])
        pys[x] = row[1, k] + t * (row[1, k + 1] - row[1, k]) + sy
        pxs[x] = row[2, k] + t * (row[2, k + 1] - row[2, k]) + sx


TILE = 16  # output rows are warped in TILE x TILE blocks of (z, y) rows (cache locality)


@njit(cache=True, nogil=True, boundscheck=False)
def _row_inside(pzs, pys, pxs, Z, Y, X):  # pragma: no cover - compiled
    """Whether all 8 corners of every sample of a row lie inside a (Z, Y, X) source.

    Without fastmath, so that a NaN coordinate reliably fails the test (and takes the
    clamped path): the unclamped path must never index outside the source."""
    zm, ym, xm = np.float32(Z - 1), np.float32(Y - 1), np.float32(X - 1)
    ok = True
    for x in range(pzs.shape[0]):
        pz, py, px = pzs[x], pys[x], pxs[x]
        ok &= (pz >= 0) & (pz < zm) & (py >= 0) & (py < ym) & (px >= 0) & (px < xm)
    return ok


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def warp_linear(src, out, field, iz, wz, iy, wy, ix, wx, shift):  # pragma: no cover - compiled
    """Trilinear warp of `src` (C, Z, Y, X), C-contiguous, into `out` (C, nz, ny, nx).

    `field` (3, CZ, CY, CX) float32: source voxel coordinates at the coarse nodes. Output voxel
    (z, y, x) lies in coarse cell (iz[z], iy[y], ix[x]) at fractions (wz[z], wy[y], wx[x]);
    `shift[z]` (dy, dx) is added to its source coordinate. Points more than half a voxel
    outside the source read 0; within that half voxel the border value is repeated. Rows
    that read a single section (the usual EM case) are interpolated bilinearly; rows whose
    samples all lie well inside the source skip the border handling. Where rows may cross
    sections, they are visited in TILE x TILE blocks of (z, y), so that the source lines a
    block reads (an oblique slab when rotated) stay in cache between neighbouring rows;
    each output voxel is computed as it would be alone, so the order changes no value.
    """
    C, Z, Y, X = src.shape
    nz, ny, nx = out.shape[1], out.shape[2], out.shape[3]
    row = np.empty((3, field.shape[3]), dtype=np.float32)
    pzs = np.empty(nx, dtype=np.float32)
    pys = np.empty(nx, dtype=np.float32)
    pxs = np.empty(nx, dtype=np.float32)
    zmax = np.float32(Z - 0.5)
    ymax = np.float32(Y - 0.5)
    xmax = np.float32(X - 0.5)
    half = np.float32(-0.5)
    zero = out.dtype.type(0)
    YX = Y * X
    # tiles only where rows may cross sections (3D rotations, z jitter): rows within one
    # section (in-plane warps of EM stacks) read best in plain order, section by section
    mixes = False
    for a in range(field.shape[1]):
        for b in range(field.shape[2]):
            for k in range(field.shape[3]):
                mixes |= field[0, a, b, k] != field[0, a, 0, 0]
    tz = TILE if mixes else 1
    ty = TILE if mixes else ny
    for zt in range(0, nz, tz):
        for yt in range(0, ny, ty):
            for z in range(zt, min(zt + tz, nz)):
                for y in range(yt, min(yt + ty, ny)):
                    _row_coordinates(field, iz, wz, iy, wy, ix, wx, shift, z, y, row, pzs, pys, pxs)
                    _warp_row(src, out, z, y, pzs, pys, pxs, zmax, ymax, xmax, half, zero, YX)


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def _warp_row(
    src, out, z, y, pzs, pys, pxs, zmax, ymax, xmax, half, zero, YX
):  # pragma: no cover - compiled
    """Output row (z, y) of `warp_linear` from its source coordinates pzs/pys/pxs."""
    C, Z, Y, X = src.shape
    nx = out.shape[3]
    section = np.int64(np.floor(pzs[0] + 0.5))
    flat = section >= 0 and section < Z
    for x in range(nx):
        flat = flat and pzs[x] == section
    inner = _row_inside(pzs, pys, pxs, Z, Y, X) if not flat else False
    # (y, x) alone inside the section (y passed twice, as the test's first axis too)
    inner2d = _row_inside(pys, pys, pxs, Y, Y, X) if flat else False
    for c in range(C):
        o = out[c, z, y]
        if inner2d:  # one section, every corner inside: no clamping, flat offsets
            p1 = src[c, section].ravel()
            for x in range(nx):
                py = pys[x]
                px = pxs[x]
                fy = np.floor(py)
                fx = np.floor(px)
                dy = py - fy
                dx = px - fx
                b = np.int64(fy) * X + np.int64(fx)
                a0 = p1[b] + dx * (p1[b + 1] - p1[b])
                a1 = p1[b + X] + dx * (p1[b + X + 1] - p1[b + X])
                o[x] = a0 + dy * (a1 - a0)
        elif flat:
            plane = src[c, section]
            for x in range(nx):
                py = pys[x]
                px = pxs[x]
                fy = np.floor(py)
                fx = np.floor(px)
                dy = py - fy
                dx = px - fx
                y0 = min(max(np.int64(fy), 0), Y - 1)
                y1 = min(max(np.int64(fy) + 1, 0), Y - 1)
                x0 = min(max(np.int64(fx), 0), X - 1)
                x1 = min(max(np.int64(fx) + 1, 0), X - 1)
                a0 = plane[y0, x0] + dx * (plane[y0, x1] - plane[y0, x0])
                a1 = plane[y1, x0] + dx * (plane[y1, x1] - plane[y1, x0])
                v = a0 + dy * (a1 - a0)
                inside = (py >= half) & (py <= ymax) & (px >= half) & (px <= xmax)
                o[x] = v if inside else zero
        elif inner:  # every corner inside: no clamping, flat offsets
            v1 = src[c].ravel()
            for x in range(nx):
                pz = pzs[x]
                py = pys[x]
                px = pxs[x]
                fz = np.floor(pz)
                fy = np.floor(py)
                fx = np.floor(px)
                dz = pz - fz
                dy = py - fy
                dx = px - fx
                b = (np.int64(fz) * Y + np.int64(fy)) * X + np.int64(fx)
                a00 = v1[b] + dx * (v1[b + 1] - v1[b])
                a01 = v1[b + X] + dx * (v1[b + X + 1] - v1[b + X])
                a10 = v1[b + YX] + dx * (v1[b + YX + 1] - v1[b + YX])
                a11 = v1[b + YX + X] + dx * (v1[b + YX + X + 1] - v1[b + YX + X])
                b0 = a00 + dy * (a01 - a00)
                b1 = a10 + dy * (a11 - a10)
                o[x] = b0 + dz * (b1 - b0)
        else:
            volume = src[c]
            for x in range(nx):
                pz = pzs[x]
                py = pys[x]
                px = pxs[x]
                fz = np.floor(pz)
                fy = np.floor(py)
                fx = np.floor(px)
                dz = pz - fz
                dy = py - fy
                dx = px - fx
                z0 = min(max(np.int64(fz), 0), Z - 1)
                z1 = min(max(np.int64(fz) + 1, 0), Z - 1)
                y0 = min(max(np.int64(fy), 0), Y - 1)
                y1 = min(max(np.int64(fy) + 1, 0), Y - 1)
                x0 = min(max(np.int64(fx), 0), X - 1)
                x1 = min(max(np.int64(fx) + 1, 0), X - 1)
                a00 = volume[z0, y0, x0] + dx * (volume[z0, y0, x1] - volume[z0, y0, x0])
                a01 = volume[z0, y1, x0] + dx * (volume[z0, y1, x1] - volume[z0, y1, x0])
                a10 = volume[z1, y0, x0] + dx * (volume[z1, y0, x1] - volume[z1, y0, x0])
                a11 = volume[z1, y1, x0] + dx * (volume[z1, y1, x1] - volume[z1, y1, x0])
                b0 = a00 + dy * (a01 - a00)
                b1 = a10 + dy * (a11 - a10)
                v = b0 + dz * (b1 - b0)
                inside = (
                    (pz >= half)
                    & (pz <= zmax)
                    & (py >= half)
                    & (py <= ymax)
                    & (px >= half)
                    & (px <= xmax)
                )
                o[x] = v if inside else zero


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def nearest_indices(field, iz, wz, iy, wy, ix, wx, shift, Z, Y, X):  # pragma: no cover
    """Flat index into a (Z, Y, X) source of the nearest voxel of each output voxel, -1 outside.

    Same geometry arguments as `warp_linear`; returns an int64 (nz, ny, nx) array, so one
    coordinate computation serves every nearest-neighbour array of the same grid.
    """
    nz, ny, nx = iz.shape[0], iy.shape[0], ix.shape[0]
    out = np.empty((nz, ny, nx), dtype=np.int64)
    row = np.empty((3, field.shape[3]), dtype=np.float32)
    pzs = np.empty(nx, dtype=np.float32)
    pys = np.empty(nx, dtype=np.float32)
    pxs = np.empty(nx, dtype=np.float32)
    for z in range(nz):
        for y in range(ny):
            _row_coordinates(field, iz, wz, iy, wy, ix, wx, shift, z, y, row, pzs, pys, pxs)
            o = out[z, y]
            for x in range(nx):
                jz = np.int64(np.floor(pzs[x] + 0.5))
                jy = np.int64(np.floor(pys[x] + 0.5))
                jx = np.int64(np.floor(pxs[x] + 0.5))
                inside = (jz >= 0) & (jz < Z) & (jy >= 0) & (jy < Y) & (jx >= 0) & (jx < X)
                o[x] = (jz * Y + jy) * X + jx if inside else -1
    return out


@njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def dense_coordinates(field, iz, wz, iy, wy, ix, wx, shift):  # pragma: no cover - compiled
    """The source coordinate (3, nz, ny, nx) of every output voxel, as the warp kernels see it.

    For tests and diagnostics; the warps never build it.
    """
    nz, ny, nx = iz.shape[0], iy.shape[0], ix.shape[0]
    out = np.empty((3, nz, ny, nx), dtype=np.float32)
    row = np.empty((3, field.shape[3]), dtype=np.float32)
    for z in range(nz):
        for y in range(ny):
            pzs, pys, pxs = out[0, z, y], out[1, z, y], out[2, z, y]
            _row_coordinates(field, iz, wz, iy, wy, ix, wx, shift, z, y, row, pzs, pys, pxs)
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
