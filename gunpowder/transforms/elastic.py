"""Random spatial transforms (affine + smooth elastic jitter + section slips) as values.

A `SpatialTransform` maps *target* positions (where an output voxel lies) to *source*
positions (where its value is read). It is stored compactly: the source coordinate at the
nodes of a coarse grid (affine part and spline-interpolated control-point jitter, exact there),
upsampled linearly on the fly, plus a (dy, dx) shift per z section (EM slips and shifts).
It warps arrays of any voxel size (`warp`), says which source voxels a warp reads
(`source_box`), and maps world points both ways (`to_source`, `to_target`), which is what a
graph/points node needs: a node at source position p moves to `transform.to_target(p)`.

Conventions: positions are world units (nm) with `dims` (2 or 3) entries; internally
everything is padded to 3D (z, y, x). The "master grid" is the voxel grid (`origin`,
`voxel_size`, `shape`) over which the transform was drawn; voxel i's centre is at
origin + (i + 0.5) * voxel_size, and master coordinates q are continuous voxel indices.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import elastic_kernels as _k

_EPS = 1e-3  # voxels: float32 slack when deciding which source voxels a warp touches


def _pad3(values: Sequence[float], fill: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size > 3:
        raise ValueError(
            f"spatial transforms handle at most 3 spatial dimensions, got {values.size}"
        )
    return np.concatenate([np.full(3 - values.size, fill), values])


@dataclass(frozen=True, eq=False)
class AxisSampling:
    """Where the output voxels of one axis fall in the coarse grid: cell index and fraction."""

    index: np.ndarray  # int64, coarse cell of each output voxel
    weight: np.ndarray  # float32, fraction within the cell (outside [0, 1] = extrapolation)


@dataclass(frozen=True, eq=False)
class SpatialTransform:
    """Target → source map over a master voxel grid (see the module docstring).

    `coarse` (3, CZ, CY, CX) float32 holds the source master coordinate of node (a, b, c),
    which sits at master coordinate (a, b, c) * `node_spacing`; `section_shifts` (Z, 2) float32
    is added to the (y, x) source coordinate of every target point in master section z.
    """

    dims: int
    origin: np.ndarray  # (3,) world position of the master grid's corner
    voxel_size: np.ndarray  # (3,) world size of a master voxel
    shape: tuple[int, int, int]
    node_spacing: np.ndarray  # (3,) master voxels between coarse nodes
    coarse: np.ndarray
    section_shifts: np.ndarray

    # ---- points ---------------------------------------------------------------------------
    def _master(self, points: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if points.shape[-1] != self.dims:
            raise ValueError(f"points must have {self.dims} coordinates, got shape {points.shape}")
        padded = np.zeros(points.shape[:-1] + (3,))
        padded[..., 3 - self.dims :] = points
        padded[..., : 3 - self.dims] = (self.origin + 0.5 * self.voxel_size)[: 3 - self.dims]
        return (padded - self.origin) / self.voxel_size - 0.5

    def _world(self, q: np.ndarray) -> np.ndarray:
        return ((q + 0.5) * self.voxel_size + self.origin)[..., 3 - self.dims :]

    def source_master(self, q: np.ndarray) -> np.ndarray:
        """Source master coordinates (N, 3) of target master coordinates `q` (N, 3)."""
        q = np.asarray(q, dtype=np.float64)
        c = q / self.node_spacing
        n = np.array(self.coarse.shape[1:])
        k = np.clip(np.floor(c).astype(np.int64), 0, n - 2)
        t = c - k
        out = np.zeros(q.shape)
        for corner in np.ndindex(2, 2, 2):
            w = np.prod(np.where(np.array(corner) == 1, t, 1.0 - t), axis=-1)
            kk = k + np.array(corner)
            out += w[:, None] * self.coarse[:, kk[:, 0], kk[:, 1], kk[:, 2]].T
        section = np.clip(np.floor(q[:, 0] + 0.5).astype(np.int64), 0, self.shape[0] - 1)
        out[:, 1:] += self.section_shifts[section]
        return out

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """World positions (N, dims) in the output → where their values come from (N, dims)."""
        return self._world(self.source_master(self._master(points)))

    def to_target(self, points: np.ndarray, iterations: int = 400, tol: float = 1e-4) -> np.ndarray:
        """World positions (N, dims) in the source → where they land in the output (N, dims).

        Inverts `to_source` by damped Newton iterations with finite-difference Jacobians,
        starting from the inverse of the mean affine part. A point that does not converge
        (its start lies across a fold) starts again from the lattice point (every half node
        spacing) whose image lies closest. Where the warp folds or tears (section slips), the
        result is one of the preimages or the closest estimate.
        """
        p = self._master(points)
        q = np.linalg.solve(self._mean_jacobian(), (p - self._corner_source()).T).T
        q, residual = self._newton(p, q, iterations, tol)
        stuck = np.flatnonzero(np.any(np.abs(residual) >= tol, axis=1))
        if len(stuck):
            lattice = self._lattice()
            images = self.source_master(lattice)
            for i in stuck:
                start = lattice[np.argmin(np.abs(images - p[i]).sum(axis=1))][None]
                q_i, r_i = self._newton(p[i : i + 1], start, iterations, tol)
                if np.abs(r_i).sum() < np.abs(residual[i]).sum():
                    q[i], residual[i] = q_i[0], r_i[0]
        return self._world(q)

    def to_target_lookup(
        self,
        points: np.ndarray,
        voxel_size: Sequence[float],
        target_offset: Sequence[float],
        target_shape: Sequence[int],
        fill_holes: bool = True,
        max_voxels: int = 2**24,
        tol: float = 1e-4,
        lookup_steps: int = 8,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """A fast `to_target` for points landing in one target grid, by lookup.

        Every voxel of the target grid (`target_offset`, `target_shape` voxels of
        `voxel_size`, world units) is mapped to its nearest source voxel, as a
        nearest-neighbour warp does; a point in a source voxel so read starts at that target
        voxel. A point in a voxel no target voxel reads (a hole of the nearest-neighbour map,
        as in 1.x's fast points transform) starts at a neighbouring voxel's target instead if
        `fill_holes`. Up to `lookup_steps` steps with the mean Jacobian (then up to 4 Newton
        steps) bring each start to within `tol` master voxels, as `to_target` does.

        Returns (targets (N, dims), status (N,)): 1 mapped; 0 not mapped although it may land
        in the grid (map it with `to_target`, or drop it as 1.x did without
        recompute_missing_points); -1 (only with `fill_holes`) no target voxel reads near it,
        so it lands outside the grid. None if the grids would exceed `max_voxels` voxels (use
        `to_target`).
        """
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        n, dims = pts.shape
        if dims != self.dims:
            raise ValueError(f"points must have {self.dims} coordinates, got shape {pts.shape}")
        targets = np.full((n, dims), np.nan)
        status = np.full(n, -1, dtype=np.int8)
        g = np.asarray(voxel_size, dtype=np.float64)
        shape = np.asarray(target_shape, dtype=np.int64)
        if n == 0 or np.prod(shape) == 0:
            return targets, status
        if np.prod(shape) > max_voxels:
            return None
        r = self._lookup_radius(g)
        lo = np.floor(pts.min(axis=0) / g).astype(np.int64) - r - 1
        size = np.floor(pts.max(axis=0) / g).astype(np.int64) + r + 1 - lo + 1
        if np.prod(size) > 2 * max_voxels:
            return None
        dims_size = tuple(int(v) for v in size)
        args, shape3 = self._prepare(lo * g, g, target_offset, shape)
        size3 = (1,) * (3 - dims) + dims_size
        index = _k.nearest_indices(*args, *size3).ravel()
        table = np.full(int(np.prod(size3)), -1, dtype=np.int64)
        read = np.flatnonzero(index >= 0)
        table[index[read]] = read
        voxel = np.floor(pts / g).astype(np.int64) - lo
        hit = table[np.ravel_multi_index(tuple(voxel.T), dims_size)]
        status[hit < 0] = 0
        if fill_holes:
            # a point landing in the grid lies within r voxels of a voxel its target reads
            holes = np.flatnonzero(hit < 0)
            offsets = sorted(
                np.ndindex(*(2 * r + 1,) * dims), key=lambda o: sum((v - r) ** 2 for v in o)
            )
            for offset in offsets[1:]:
                if len(holes) == 0:
                    break
                near = voxel[holes] + np.asarray(offset) - r
                candidate = table[np.ravel_multi_index(tuple(near.T), dims_size)]
                hit[holes] = candidate
                holes = holes[candidate < 0]
            status[holes] = -1
        found = np.flatnonzero(hit >= 0)
        if len(found):
            cell = np.stack(np.unravel_index(hit[found], shape3), axis=1)[:, 3 - dims :]
            centre = np.asarray(target_offset, dtype=np.float64) + (cell + 0.5) * g
            qc = self._master(centre)
            p = self._master(pts[found])
            # fixed-point steps with the mean Jacobian, to the precision of `to_target`
            inverse = np.linalg.inv(self._field_derivatives[0])
            q = qc.copy()
            residual = p - self.source_master(q)
            active = np.arange(len(found))
            for _ in range(lookup_steps):
                q[active] += residual[active] @ inverse.T
                residual[active] = p[active] - self.source_master(q[active])
                active = active[np.any(np.abs(residual[active]) >= tol, axis=1)]
                if len(active) == 0:
                    break
            for _ in range(4 if len(active) else 0):  # far from affine: local Newton steps
                step = np.linalg.solve(self._jacobians(q[active]), residual[active][..., None])
                q[active] += step[..., 0]
                residual[active] = p[active] - self.source_master(q[active])
                active = active[np.any(np.abs(residual[active]) >= tol, axis=1)]
                if len(active) == 0:
                    break
            good = np.all(np.abs(residual) < tol, axis=1)
            targets[found[good]] = self._world(q[good])
            status[found[good]] = 1
            status[found[~good]] = 0
        return targets, status

    @functools.cached_property
    def _field_derivatives(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, largest absolute) derivative of the coarse field, (3, 3) each: source
        master voxels per target master voxel."""
        mean = np.eye(3)
        bound = np.zeros((3, 3))
        for axis in range(3):
            n = self.coarse.shape[1 + axis]
            if n > 1:
                diff = np.diff(self.coarse, axis=1 + axis) / np.float32(self.node_spacing[axis])
                flat = diff.reshape(3, -1)
                mean[:, axis] = flat.mean(axis=1)
                bound[:, axis] = np.abs(flat).max(axis=1)
        if abs(np.linalg.det(mean)) < 1e-6:
            mean = np.eye(3)
        return mean, bound

    def _lookup_radius(self, voxel_size: np.ndarray) -> int:
        """Voxels (of `voxel_size`) between a point's source voxel and the one the target
        voxel it lands in reads, at most: half a voxel through the largest derivative."""
        dims = self.dims
        vs = self.voxel_size[3 - dims :]
        bound = self._field_derivatives[1][3 - dims :, 3 - dims :]
        # in lookup voxels: d(source / g) / d(target / g)
        scaled = bound * (vs[:, None] / voxel_size[:, None]) * (voxel_size[None, :] / vs[None, :])
        return max(1, int(np.ceil(0.5 * scaled.sum(axis=1).max() + 1e-6)))

    def _newton(
        self, p: np.ndarray, q: np.ndarray, iterations: int, tol: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Damped Newton steps towards source_master(q) == p, only for points not yet within
        `tol`; returns (q, residual)."""
        q = np.array(q, dtype=np.float64)
        residual = p - self.source_master(q)
        for _ in range(iterations):
            active = np.flatnonzero(np.any(np.abs(residual) >= tol, axis=1))
            if len(active) == 0:
                break
            qa, ra, pa = q[active], residual[active], p[active]
            step = np.linalg.solve(self._jacobians(qa), ra[..., None])[..., 0]
            damping = np.ones(len(qa))
            for _ in range(8):  # halve the step where it does not reduce the residual
                trial = qa + damping[:, None] * step
                new = pa - self.source_master(trial)
                worse = np.abs(new).sum(axis=1) > np.abs(ra).sum(axis=1)
                if not worse.any():
                    break
                damping[worse] *= 0.5
            q[active], residual[active] = trial, new
        return q, residual

    def _lattice(self) -> np.ndarray:
        """Target master coordinates every half node spacing over the grid (M, 3)."""
        axes = [
            np.arange(0.0, max(n - 1, 0) + step / 2, step)
            for n, step in zip(self.shape, np.maximum(self.node_spacing / 2, 1.0))
        ]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)

    def _jacobians(self, q: np.ndarray, h: float = 0.25) -> np.ndarray:
        """(N, 3, 3) central-difference Jacobians of the source map (master voxels)."""
        jac = np.empty((len(q), 3, 3))
        for axis in range(3):
            dq = np.zeros(3)
            dq[axis] = h
            jac[:, :, axis] = (self.source_master(q + dq) - self.source_master(q - dq)) / (2 * h)
        singular = np.abs(np.linalg.det(jac)) < 1e-6
        jac[singular] = np.eye(3)
        return jac

    def _mean_jacobian(self) -> np.ndarray:
        """Mean Jacobian of the coarse field (master voxels per master voxel)."""
        jac = np.eye(3)
        for axis in range(3):
            if self.coarse.shape[1 + axis] > 1:
                diff = np.diff(self.coarse, axis=1 + axis) / self.node_spacing[axis]
                jac[:, axis] = diff.reshape(3, -1).mean(axis=1)
        if abs(np.linalg.det(jac)) < 1e-6:
            return np.eye(3)
        return jac

    def _corner_source(self) -> np.ndarray:
        """Source of master coordinate 0, less the mean Jacobian's share (affine offset)."""
        return self.coarse[:, 0, 0, 0].astype(np.float64)

    # ---- arrays ---------------------------------------------------------------------------
    def _sampling(self, offset: np.ndarray, voxel_size: np.ndarray, shape: Sequence[int]):
        """Per-axis coarse sampling of a target grid (world `offset`, `voxel_size`, `shape`)."""
        axes = []
        scale = voxel_size / self.voxel_size
        first = (offset - self.origin) / self.voxel_size + 0.5 * scale - 0.5
        for d in range(3):
            q = np.arange(shape[d]) * scale[d] + first[d]
            c = q / self.node_spacing[d]
            k = np.clip(np.floor(c).astype(np.int64), 0, self.coarse.shape[1 + d] - 2)
            axes.append(AxisSampling(k, (c - k).astype(np.float32)))
        sections = np.clip(
            np.floor(np.arange(shape[0]) * scale[0] + first[0] + 0.5).astype(np.int64),
            0,
            self.shape[0] - 1,
        )
        return axes, sections

    def _grid_field(self, source_offset: np.ndarray, voxel_size: np.ndarray, sections: np.ndarray):
        """The coarse field and section shifts in voxel indices of a source grid."""
        e = self.voxel_size / voxel_size
        f = (self.origin - source_offset) / voxel_size + 0.5 * e - 0.5
        field = self.coarse * e[:, None, None, None].astype(np.float32)
        field += f[:, None, None, None].astype(np.float32)
        shift = (self.section_shifts[sections] * e[1:].astype(np.float32)).astype(np.float32)
        return np.ascontiguousarray(field, dtype=np.float32), np.ascontiguousarray(shift)

    def _pad_world(self, position: Sequence[float]) -> np.ndarray:
        """A world position padded to 3D with the master origin on the missing axes."""
        position = np.asarray(position, dtype=np.float64)
        if position.size != self.dims:
            raise ValueError(f"expected {self.dims} coordinates, got {tuple(position)}")
        return np.concatenate([self.origin[: 3 - self.dims], position])

    def _prepare(self, source_offset, voxel_size, target_offset, target_shape):
        """Kernel arguments (field, per-axis samplings, shifts) and the 3D target shape."""
        vs = _pad3(voxel_size, 1.0)
        target_offset = self._pad_world(target_offset)
        source_offset = self._pad_world(source_offset)
        shape = (1,) * (3 - len(target_shape)) + tuple(int(s) for s in target_shape)
        axes, sections = self._sampling(target_offset, vs, shape)
        field, shift = self._grid_field(source_offset, vs, sections)
        args = (field,)
        for a in axes:
            args += (a.index, a.weight)
        return args + (shift,), shape

    def source_coordinates(
        self, source_offset, voxel_size, target_offset, target_shape
    ) -> np.ndarray:
        """Source voxel coordinates (3, *target_shape padded to 3D) of every target voxel.

        Voxel indices are relative to a source array starting at world `source_offset`.
        """
        args, _ = self._prepare(source_offset, voxel_size, target_offset, target_shape)
        return _k.dense_coordinates(*args)

    def source_box(
        self, voxel_size, target_offset, target_shape, interpolate: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(begin, end) world corners (dims,) of the source voxels that `warp` reads.

        On the voxel grid of `voxel_size` (multiples of it from 0). Exact for the piecewise
        linear field: along z it is evaluated at every target section (each with its own
        shift; without shifts, as along y and x), along y and x at the box's ends and the
        coarse nodes in between, where the extremes of a multilinear function lie.
        """
        vs = _pad3(voxel_size, 1.0)
        args, shape = self._prepare(np.zeros(self.dims), voxel_size, target_offset, target_shape)
        field, shift = args[0], args[-1]
        shifted = bool(np.any(shift))  # without section shifts z is linear between nodes too
        coords = []
        for d in range(3):
            index, weight = args[1 + 2 * d], args[2 + 2 * d]
            if d == 0 and shifted:  # every section, each with its own shift
                coords.append(index + weight.astype(np.float64))
                continue
            lo = index[0] + float(weight[0])
            hi = index[-1] + float(weight[-1])
            inner = np.arange(int(np.ceil(lo)), int(np.floor(hi)) + 1, dtype=np.float64)
            coords.append(np.unique(np.concatenate([[lo, hi], inner])))
        values = field.astype(np.float64)
        for d in (2, 1, 0):  # smallest results first
            values = _lerp_axis(values, coords[d], 1 + d)
        if shifted:
            values[1:] += shift.T.astype(np.float64)[:, :, None, None]
        lo = values.reshape(3, -1).min(axis=1)
        hi = values.reshape(3, -1).max(axis=1)
        if interpolate:
            begin = np.floor(lo + _EPS)
            end = np.ceil(hi - _EPS) + 1
        else:
            begin = np.floor(lo + 0.5 - _EPS)
            end = np.floor(hi + 0.5 + _EPS) + 1
        end = np.maximum(end, begin + 1)
        if self.dims < 3:
            begin[: 3 - self.dims] = 0
            end[: 3 - self.dims] = 1
        begin_world = (begin * vs)[3 - self.dims :]
        end_world = (end * vs)[3 - self.dims :]
        return begin_world.astype(np.int64), end_world.astype(np.int64)

    def warp(
        self,
        data: np.ndarray,
        source_offset,
        voxel_size,
        target_offset,
        target_shape,
        interpolate: bool,
        index_cache: dict | None = None,
    ) -> np.ndarray:
        """`data` (channels..., spatial) starting at world `source_offset`, warped onto the
        target grid (`target_offset`, `target_shape` voxels of `voxel_size`).

        Linear interpolation if `interpolate` (result in data's dtype, rounded for integers),
        else nearest neighbour (no new values). Values read from outside `data` are 0.
        """
        spatial = len(target_shape)
        lead = data.shape[: data.ndim - spatial]
        src = data.reshape((-1,) + (1,) * (3 - spatial) + data.shape[data.ndim - spatial :])
        if not interpolate:
            key = (
                tuple(np.asarray(source_offset).tolist()),
                tuple(np.asarray(voxel_size).tolist()),
                tuple(np.asarray(target_offset).tolist()),
                tuple(int(s) for s in target_shape),
                src.shape[1:],
            )
            index = None if index_cache is None else index_cache.get(key)
            if index is None:
                args, _ = self._prepare(source_offset, voxel_size, target_offset, target_shape)
                index = _k.nearest_indices(*args, *src.shape[1:])
                if index_cache is not None:
                    index_cache[key] = index
            out = _k.gather(np.ascontiguousarray(src), index)
            return out.reshape(lead + tuple(target_shape))
        args, shape = self._prepare(source_offset, voxel_size, target_offset, target_shape)
        work = src if src.dtype in (np.float32, np.float64) else src.astype(np.float32)
        work = np.ascontiguousarray(work)
        out = np.empty((work.shape[0],) + shape, dtype=work.dtype)
        _k.warp_linear(work, out, *args)
        if out.dtype != data.dtype:
            if np.issubdtype(data.dtype, np.integer):
                info = np.iinfo(data.dtype)
                out = np.clip(np.rint(out), info.min, info.max)
            out = out.astype(data.dtype)
        return out.reshape(lead + tuple(target_shape))


def _lerp_axis(values: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """`values` linearly interpolated along `axis` at `coords` (node units, extrapolating)."""
    n = values.shape[axis]
    k = np.clip(np.floor(coords).astype(np.int64), 0, n - 2)
    t = coords - k
    shape = [1] * values.ndim
    shape[axis] = len(coords)
    t = t.reshape(shape)
    a = np.take(values, k, axis=axis)
    b = np.take(values, k + 1, axis=axis)
    return a + t * (b - a)


# ---- building transforms ------------------------------------------------------------------


def _contract(matrix: np.ndarray, values: np.ndarray, axis: int) -> np.ndarray:
    """`matrix` (m, n) applied along `axis` (length n) of `values`: that axis becomes m long.

    By `einsum` without BLAS: these products are small (n is a handful of control points),
    where a multi-threaded BLAS costs more in thread hand-offs than the work (tens of ms
    per transform on a loaded machine), and einsum's fixed summation order gives the same
    bits on every machine and thread count."""
    moved = np.moveaxis(values, axis, 0)
    out = np.einsum("ij,j...->i...", matrix, moved, optimize=False)
    return np.moveaxis(out, 0, axis)


def spline_matrix(positions: np.ndarray, n_control: int) -> np.ndarray:
    """(len(positions), n_control): cubic-spline interpolation of control values at positions
    (in control-point index units)."""
    if n_control == 1:
        return np.ones((len(positions), 1))
    eye = np.eye(n_control)
    rows = np.repeat(np.asarray(positions, dtype=np.float64)[:, None], n_control, axis=1)
    cols = np.broadcast_to(np.arange(n_control, dtype=np.float64), rows.shape)
    return ndimage.map_coordinates(eye, [rows, cols], order=3, mode="nearest")


def control_grid_shape(shape: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...]:
    """Number of control points per axis: about shape / spacing, at least 1 (1.x)."""
    return tuple(
        max(1, int(round(s / float(sp)))) if sp > 0 else 1 for s, sp in zip(shape, spacing)
    )


def draw_jitter(
    rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], sigma: Sequence[float]
) -> np.ndarray:
    """Control-point displacements (len(shape), *control grid) ~ N(0, sigma) per axis."""
    grid = control_grid_shape(shape, spacing)
    jitter = np.zeros((len(shape),) + grid)
    for d, s in enumerate(sigma):
        if s > 0:
            jitter[d] = rng.normal(0.0, float(s), size=grid)
    return jitter


def draw_misalignment(
    rng: np.random.Generator,
    sections: int,
    prob_slip: float,
    prob_shift: float,
    max_misalign: float,
) -> np.ndarray:
    """(sections, 2) integer (dy, dx) offsets: a slip moves one section, a shift it and all after.

    Offsets are uniform in [-max_misalign, max_misalign] voxels (1.x).
    """
    shifts = np.zeros((sections, 2))
    if prob_slip + prob_shift <= 0:
        return shifts
    m = int(max_misalign)
    for z in range(sections):
        r = rng.random()
        if r < prob_slip:
            shifts[z] += rng.integers(-m, m + 1, size=2)
        elif r < prob_slip + prob_shift:
            shifts[z:] += rng.integers(-m, m + 1, size=2)
    return shifts


def rotation_2d(angle: float) -> np.ndarray:
    """Rotation by `angle` of (y, x) offsets: y' = cos y - sin x, x' = sin y + cos x."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def random_rotation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random rotation matrix in n (2 or 3) dimensions."""
    if n == 1:
        return np.eye(1)
    if n == 2:
        return rotation_2d(rng.uniform(0.0, 2.0 * np.pi))
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def build_transform(
    origin: Sequence[float],
    voxel_size: Sequence[float],
    shape: Sequence[int],
    affine: np.ndarray | None = None,
    jitter: np.ndarray | None = None,
    section_shifts: np.ndarray | None = None,
    subsample: int = 1,
    spatial_dims: int | None = None,
) -> SpatialTransform:
    """A transform over the master grid (`origin`, `voxel_size`, `shape`; `dims` = len(shape)).

    Acts on the last `spatial_dims` axes (default all; the others map to themselves):
    source = centre + affine @ (target - centre) + jitter(target), in master voxels, with the
    centre of the grid fixed; `jitter` (spatial_dims, *control grid) is interpolated with
    cubic splines over control points spread evenly across the grid (1.x). `section_shifts`
    (shape[0], 2) adds (dy, dx) per z section (3D only). The field is exact on coarse nodes
    every `subsample` voxels (finer where the control points are denser) and linear between.
    """
    dims = len(shape)
    if dims not in (2, 3):
        raise ValueError(
            f"spatial transforms need 2 or 3 spatial dimensions, got shape {tuple(shape)}"
        )
    sd = dims if spatial_dims is None else int(spatial_dims)
    if not 1 <= sd <= dims:
        raise ValueError(f"spatial_dims must be between 1 and {dims}, got {spatial_dims}")
    shape3 = (1,) * (3 - dims) + tuple(int(s) for s in shape)
    origin3 = _pad3(origin, 0.0)
    vs3 = _pad3(voxel_size, 1.0)
    first = 3 - sd  # first transformed axis (3D-padded)
    ctrl_spacing = np.full(3, np.inf)
    if jitter is not None:
        for d, n_c in enumerate(jitter.shape[1:]):
            n = shape3[first + d]
            if n_c > 1 and n > 1:
                ctrl_spacing[first + d] = (n - 1) / (n_c - 1)
    spacing = np.ones(3)
    counts = []
    for d in range(3):
        n = shape3[d]
        if d < first or n <= 1:
            step = max(n - 1, 1)  # identity axis: two nodes suffice (linear is exact)
        else:
            step = max(1, int(subsample))
            if np.isfinite(ctrl_spacing[d]):  # keep >= 2 nodes per control-point interval
                step = max(1, min(step, int(ctrl_spacing[d] // 2)))
        spacing[d] = step
        counts.append(max(2, int(np.ceil((n - 1) / step)) + 1))
    nodes = [np.arange(c) * spacing[d] for d, c in enumerate(counts)]
    grids = np.meshgrid(*nodes, indexing="ij")
    coarse = np.stack(grids).astype(np.float64)
    centre = (np.array(shape3) - 1) / 2.0
    if affine is not None:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (sd, sd):
            raise ValueError(f"affine must be {sd}x{sd}, got {affine.shape}")
        rel = np.stack([grids[first + d] - centre[first + d] for d in range(sd)])
        coarse[first:] = centre[first:, None, None, None] + _contract(affine, rel, 0)
    if jitter is not None:
        if jitter.shape[0] != sd:
            raise ValueError(f"jitter must have {sd} components, got {jitter.shape[0]}")
        mats = []
        for d in range(sd):
            n = shape3[first + d]
            n_c = jitter.shape[1 + d]
            pos = nodes[first + d] * ((n_c - 1) / (n - 1) if n > 1 else 0.0)
            mats.append(spline_matrix(pos, n_c))
        for comp in range(sd):
            values = jitter[comp]
            for d in range(sd):
                values = _contract(mats[d], values, d)
            coarse[first + comp] += values.reshape((1,) * first + values.shape)
    shifts = np.zeros((shape3[0], 2))
    if section_shifts is not None:
        if dims != 3:
            raise ValueError("section shifts need 3 spatial dimensions")
        shifts = np.asarray(section_shifts, dtype=np.float64).reshape(shape3[0], 2)
    return SpatialTransform(
        dims=dims,
        origin=origin3,
        voxel_size=vs3,
        shape=shape3,
        node_spacing=spacing,
        coarse=np.ascontiguousarray(coarse, dtype=np.float32),
        section_shifts=shifts.astype(np.float32),
    )
