from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Roi
from ..node import Node
from ..spec import BatchRequest
from ..transforms.augment_defects import (
    draw_section_shifts,
    shift_sections,
)
from ._defects import _check_p, _fill, _unshift
from ._warp import check_source, move_graph


class ShiftAugment(Node):
    """Slip or shift sections along `shift_axis` in their plane, like misaligned EM sections.

    Trains robustness to imperfect section alignment. A slip moves one section, a shift it
    and all sections after it, by N(0, `sigma`) world units per in-plane axis, rounded to the
    voxel grid; every array and graph of the batch moves alike. The upstream ROIs grow by the
    shifts (no data is made up beyond the provided ROI: add a Pad or RandomLocation
    upstream).

    Args:
        prob_slip: per section, the probability of a slip (default 0).
        prob_shift: per section, the probability of a shift (default 0).
        sigma: standard deviation of the offsets, in world units (default 0: no movement).
        shift_axis: the spatial axis (index) along which sections are taken (default 0: z).
        p: probability of augmenting a request at all (default 1.0).

    Example::

        pipeline += gp.ShiftAugment(prob_slip=0.05, prob_shift=0.05, sigma=40)
    """

    def __init__(
        self,
        prob_slip: float = 0,
        prob_shift: float = 0,
        sigma: float = 0,
        shift_axis: int = 0,
        p: float = 1.0,
    ) -> None:
        self.prob_slip = float(prob_slip)
        self.prob_shift = float(prob_shift)
        self.sigma = float(sigma)
        self.shift_axis = int(shift_axis)
        self.p = _check_p("ShiftAugment", p)

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
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
            if key in specs and spec.voxel_size is not None:
                lcm = np.lcm(lcm, np.array(spec.voxel_size, dtype=np.int64))
        total = None
        for s in specs.values():
            total = s.roi if total is None else total.union(s.roi)
        first = total.begin[axis] // int(lcm[axis])
        n = -(-total.end[axis] // int(lcm[axis])) - first
        plane = [d for d in range(dims) if d != axis]
        shifts = draw_section_shifts(
            rng, n, self.prob_slip, self.prob_shift, self.sigma, lcm[plane]
        )
        if not shifts.any():
            return request, None
        upstream = request.copy()
        sources = {}
        for key, spec in specs.items():
            s0, s1 = self._sections(spec.roi, lcm, first)
            lo, hi = shifts[s0:s1].min(axis=0), shifts[s0:s1].max(axis=0)
            begin, end = list(spec.roi.begin), list(spec.roi.end)
            for i, d in enumerate(plane):
                begin[d] += int(lo[i])
                end[d] += int(hi[i])
            source = Roi(begin, [e - b for b, e in zip(begin, end)])
            sources[key] = source
            have = self.upstream_spec[key].roi if key in self.upstream_spec else None
            if key in request.array_specs:
                check_source(self.name, key, spec.roi, source, have)
            elif have is not None and not have.contains(source):
                # a graph near the edge of the data: points that do not exist are not made up
                clipped = source.intersect(have)
                source = clipped if not clipped.empty else source
            upstream[key] = spec.replace(roi=source)
        return upstream, (shifts, lcm, first, request, sources)

    def _sections(self, roi: Roi, lcm: np.ndarray, first: int) -> tuple[int, int]:
        step = int(lcm[self.shift_axis])
        s0 = roi.begin[self.shift_axis] // step - first
        s1 = -(-roi.end[self.shift_axis] // step) - first
        return s0, s1

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
                    [
                        (roi.begin[d] + shifts[section, i] - source.begin[d]) // vs[d]
                        for i, d in enumerate(plane)
                    ],
                    axis=1,
                )
                plane_shape = [roi.shape[d] // vs[d] for d in plane]
                data = shift_sections(array.data, offsets, axis, dims, plane_shape)
                batch[key] = Array(data, array.spec.replace(roi=roi), array.attrs)
            else:
                back = partial(
                    _unshift, shifts=shifts, plane=plane, axis=axis, step=step, first=first
                )
                batch[key] = move_graph(batch[key], back, roi, self.name, key)
        return batch
