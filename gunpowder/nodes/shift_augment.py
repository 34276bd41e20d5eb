from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import BatchRequest, ProviderSpec
from ..transforms.augment_defects import draw_section_shifts, shift_sections
from . import _args as args
from ._defects import _apply_shifts, _fill
from ._graph_support import section_shift_graph
from ._warp import check_source, move_graph


class ShiftContext(NamedTuple):
    """The drawn section shifts and what process needs to apply them."""

    shifts: Any
    lcm: Any
    first: Any
    request: Any
    sources: Any


class _GlobalRandom:
    """The two draws the section models need, from the global `random`/`np.random` state.

    Only for 1.x code that calls a node's helpers or `prepare(request)` directly, without the
    engine's Generator; 1.x seeded these through `random.seed` and `np.random.seed`.
    """

    def random(self) -> float:
        return random.random()

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        return np.random.normal(loc, scale, size)


class ShiftAugment(Node):
    """Slip or shift sections along `shift_axis` in their plane, like misaligned EM sections.

    Trains robustness to imperfect section alignment. A slip moves one section, a shift it
    and all sections after it, by N(0, `sigma`) world units per in-plane axis, rounded to the
    voxel grid (the least common multiple of the requested voxel sizes); every array and
    graph of the batch moves alike: the content of a section moves by its shift, so output
    position x reads upstream position x - shift. The upstream ROIs grow by the shifts (no
    data is made up beyond the provided ROI: add a Pad or RandomLocation upstream).

    The 1.x helpers `construct_global_shift_array`, `get_sub_shift_array`,
    `compute_upstream_roi`, `shift_and_crop` and `shift_points` are available as in 1.x; shift
    arrays have one row per section and one column per spatial axis (0 along `shift_axis`),
    in world units.

    Args:
        prob_slip: per section, the probability of a slip (default 0).
        prob_shift: per section, the probability of a shift (default 0); prob_slip +
            prob_shift must not exceed 1.
        sigma: standard deviation of the offsets, in world units (default 0: no movement);
            one value for every in-plane axis, or one per spatial axis.
        shift_axis: the spatial axis (index) along which sections are taken (default 0: z).
        p: probability of augmenting a request at all (default 1.0).

    Example::

        pipeline += gp.ShiftAugment(prob_slip=0.05, prob_shift=0.05, sigma=40)
    """

    def __init__(
        self,
        prob_slip: float = 0,
        prob_shift: float = 0,
        sigma: float | Sequence[float] = 0,
        shift_axis: int = 0,
        p: float = 1.0,
    ) -> None:
        name = "ShiftAugment"
        self.prob_slip = args.probability(name, "prob_slip", prob_slip)
        self.prob_shift = args.probability(name, "prob_shift", prob_shift)
        if self.prob_slip + self.prob_shift > 1 + 1e-9:
            raise ValueError(
                f"{name}: prob_slip + prob_shift must be at most 1, got {prob_slip} + {prob_shift}"
            )
        sigmas = args.non_negative(name, "sigma", sigma)
        self.sigma = sigmas[0] if np.ndim(sigma) == 0 else sigmas
        self.shift_axis = args.integer(name, "shift_axis", shift_axis, minimum=0)
        self.p = args.probability(name, "p", p)
        self.ndim: int | None = None

    # ---- 1.x surface ----------------------------------------------------------------------
    @property
    def shift_sigmas(self) -> tuple[float, ...]:
        """Per spatial axis, the standard deviation of the offsets (0 along `shift_axis`)."""
        if self.ndim is None:
            raise AttributeError("ShiftAugment.shift_sigmas is known once ndim is (after setup)")
        return self._sigmas(self.ndim)

    def _sigmas(self, dims: int) -> tuple[float, ...]:
        if isinstance(self.sigma, tuple):
            if len(self.sigma) != dims:
                raise PipelineRequestError(
                    f"{self.name}: sigma has {len(self.sigma)} entries, but the data has {dims} "
                    "spatial dimensions"
                )
            return tuple(0.0 if d == self.shift_axis else s for d, s in enumerate(self.sigma))
        return tuple(0.0 if d == self.shift_axis else float(self.sigma) for d in range(dims))

    @staticmethod
    def construct_global_shift_array(
        shift_axis_len: int,
        shift_sigmas: Sequence[float],
        prob_slip: float,
        prob_shift: float,
        lcm_voxel_size: Sequence[int],
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """(shift_axis_len, dims) world offsets of every section, multiples of
        `lcm_voxel_size` (1.x). Draws from `rng`, or without one from the global `random`
        and `np.random` states (as 1.x did)."""
        source = _GlobalRandom() if rng is None else rng
        return draw_section_shifts(
            source, int(shift_axis_len), prob_slip, prob_shift, shift_sigmas, lcm_voxel_size
        )

    @staticmethod
    def get_sub_shift_array(
        total_roi: Roi,
        item_roi: Roi,
        shift_array: np.ndarray,
        shift_axis: int,
        lcm_voxel_size: Sequence[int],
    ) -> np.ndarray:
        """The rows of `shift_array` (sections of `total_roi`) that `item_roi` spans (1.x)."""
        step = int(lcm_voxel_size[shift_axis])
        start = (item_roi.begin[shift_axis] - total_roi.begin[shift_axis]) // step
        stop = -(-(item_roi.end[shift_axis] - total_roi.begin[shift_axis]) // step)
        return np.asarray(shift_array)[start:stop]

    @staticmethod
    def compute_upstream_roi(request_roi: Roi, sub_shift_array: np.ndarray) -> Roi:
        """The ROI to read so that every section of `request_roi` can be shifted (1.x):
        output x reads x - shift, so the ROI grows by the largest shift before and the
        smallest after."""
        shifts = np.asarray(sub_shift_array, dtype=np.int64)
        high, low = shifts.max(axis=0), shifts.min(axis=0)
        begin = Coordinate(int(b - h) for b, h in zip(request_roi.begin, high))
        shape = Coordinate(int(s + h - lo) for s, h, lo in zip(request_roi.shape, high, low))
        return Roi(begin, shape)

    def shift_and_crop(
        self,
        arr: np.ndarray,
        roi_shape: Sequence[int],
        sub_shift_array: np.ndarray,
        voxel_size: Sequence[int],
    ) -> np.ndarray:
        """`arr` (the data of `compute_upstream_roi`) with each section shifted and cropped to
        `roi_shape` (world units) (1.x)."""
        dims = len(roi_shape) if self.ndim is None else self.ndim
        axis = self.shift_axis
        vs = np.asarray(voxel_size, dtype=np.int64)
        shifts = np.asarray(sub_shift_array, dtype=np.int64)
        plane = [d for d in range(dims) if d != axis]
        n = int(roi_shape[axis]) // int(vs[axis])
        rows = (np.arange(n) * int(vs[axis]) * len(shifts)) // int(roi_shape[axis])
        offsets = (shifts.max(axis=0)[plane] - shifts[rows][:, plane]) // vs[plane]
        shape = [int(roi_shape[d]) // int(vs[d]) for d in plane]
        return shift_sections(np.asarray(arr), offsets, axis, dims, shape)

    @staticmethod
    def shift_points(
        points: Any,
        request_roi: Roi,
        sub_shift_array: np.ndarray,
        shift_axis: int,
        lcm_voxel_size: Sequence[int],
    ) -> Any:
        """`points` (a Graph) with every node moved by the shift of its section (sections of
        `lcm_voxel_size[shift_axis]` from `request_roi.begin`), cropped to `request_roi` (1.x)."""
        return section_shift_graph(
            points, request_roi, shift_axis, sub_shift_array, int(lcm_voxel_size[shift_axis])
        )

    # ---- node -----------------------------------------------------------------------------
    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        dims = {
            s.roi.dims
            for s in upstream_spec.values()
            if s.roi is not None and not getattr(s, "nonspatial", False)
        }
        if len(dims) == 1:
            self.ndim = dims.pop()
            if self.shift_axis >= self.ndim:
                raise PipelineSetupError(
                    f"{self.name}: shift_axis {self.shift_axis} is not one of the {self.ndim} "
                    "spatial axes of the upstream data"
                )
            if isinstance(self.sigma, tuple) and len(self.sigma) != self.ndim:
                raise PipelineSetupError(
                    f"{self.name}: sigma has {len(self.sigma)} entries, but the upstream data "
                    f"has {self.ndim} spatial dimensions"
                )
        return upstream_spec

    def prepare(
        self, request: BatchRequest, rng: np.random.Generator | None = None
    ) -> tuple[Any, Any]:
        if rng is None:  # 1.x code calling prepare(request) itself
            rng = _GlobalRandom()
        if rng.random() >= self.p:
            return request, None
        specs = {
            k: s
            for k, s in request.items()
            if s.roi is not None and not s.roi.unbounded and not getattr(s, "nonspatial", False)
        }
        if not specs:
            return request, None
        dims = next(iter(specs.values())).roi.dims
        axis = self.shift_axis
        if not 0 <= axis < dims or any(s.roi.dims != dims for s in specs.values()):
            raise PipelineRequestError(
                f"{self.name}: shift_axis {axis} must be one of the {dims} spatial axes, and all "
                "requested ROIs must have that many dimensions"
            )
        lcm = np.ones(dims, dtype=np.int64)
        for key, spec in request.array_specs.items():
            vs = spec.voxel_size
            if vs is None and self.upstream_spec is not None and key in self.upstream_spec:
                vs = self.upstream_spec[key].voxel_size
            if key in specs and vs is not None:
                lcm = np.lcm(lcm, np.array(vs, dtype=np.int64))
        total = None
        for s in specs.values():
            total = s.roi if total is None else total.union(s.roi)
        step = int(lcm[axis])
        first = total.begin[axis] // step
        n = -(-total.end[axis] // step) - first
        shifts = self.construct_global_shift_array(
            n, self._sigmas(dims), self.prob_slip, self.prob_shift, lcm, rng=rng
        )
        if not shifts.any():
            return request, None
        upstream = request.copy()
        sources = {}
        for key, spec in specs.items():
            s0 = spec.roi.begin[axis] // step - first
            s1 = -(-spec.roi.end[axis] // step) - first
            source = self.compute_upstream_roi(spec.roi, shifts[s0:s1])
            sources[key] = source
            have = (
                self.upstream_spec[key].roi
                if self.upstream_spec is not None and key in self.upstream_spec
                else None
            )
            if key in request.array_specs:
                check_source(self.name, key, spec.roi, source, have)
            elif have is not None and not have.contains(source):
                # a graph near the edge of the data: points that do not exist are not made up
                clipped = source.intersect(have)
                source = clipped if not clipped.empty else source
            upstream[key] = spec.replace(roi=source)
        return upstream, ShiftContext(shifts, lcm, first, request, sources)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        shifts, lcm, first, request, sources = ctx
        axis = self.shift_axis
        step = int(lcm[axis])
        for key, spec in request.items():
            if key not in sources:
                continue
            roi, source = spec.roi, sources[key]
            dims = roi.dims
            plane = [d for d in range(dims) if d != axis]
            if key in request.array_specs:
                array = _fill(batch[key], source)
                vs = array.spec.voxel_size
                n = roi.shape[axis] // vs[axis]
                z = roi.begin[axis] + np.arange(n) * vs[axis]
                section = z // step - first
                offsets = np.stack(
                    [(roi.begin[d] - shifts[section, d] - source.begin[d]) // vs[d] for d in plane],
                    axis=1,
                )
                plane_shape = [roi.shape[d] // vs[d] for d in plane]
                data = shift_sections(array.data, offsets, axis, dims, plane_shape)
                batch[key] = Array(data, array.spec.replace(roi=roi), array.attrs)
            else:
                moved = partial(_apply_shifts, shifts=shifts, axis=axis, step=step, first=first)
                batch[key] = move_graph(batch[key], moved, roi, self.name, key)
        return batch
