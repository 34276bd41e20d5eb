"""EM section defects: `DefectAugment` (missing, low-contrast, artifact and folded sections)
and `ShiftAugment` (sections slipped or shifted in their plane), with 1.x arguments."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..pipeline import Node, Pipeline
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms.augment_defects import (
    blend,
    draw_section_shifts,
    fold,
    low_contrast,
    shift_sections,
)
from .elastic import check_source, move_graph

MISSING, LOW_CONTRAST, ARTIFACT, DEFORM = "missing", "low_contrast", "artifact", "deform"


def _check_p(node: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{node}: p must be in [0, 1], got {p}")
    return p


class DefectAugment(Node):
    """Simulate EM section defects: missing, low-contrast, artifact-laden and folded sections.

    Real EM stacks have such sections; training with them makes a network robust to them.
    Per section along spatial `axis` of `intensities`, one defect is drawn with the given
    probabilities (which must sum to at most 1): missing (set to 0), low contrast
    (`mean + (a - mean) * contrast_scale`, the section's mean), an artifact blended in
    (`a * (1 - alpha) + artifact * alpha`), or a fold (both halves pushed towards a random
    line, the line drawn 0; 3D only, in-plane context read from upstream). Key, spec and
    dtype are kept.

    Args:
        intensities: the ArrayKey of the intensities to change in place.
        prob_missing: per section, the probability that it is blank (default 0.05).
        prob_low_contrast: per section, the probability of low contrast (default 0.05).
        prob_artifact: per section, the probability of an artifact (default 0.0); > 0 needs
            `artifact_source`, `artifacts` and `artifacts_mask`.
        prob_deform: per section, the probability of a fold (default 0.0).
        contrast_scale: the contrast factor of low-contrast sections (default 0.1).
        artifact_source: a pipeline (or source) providing `artifacts` and `artifacts_mask`;
            it is built with this node and asked, per artifact section, for that section's
            ROI (world units, same voxel size). Default None.
        artifacts: the ArrayKey of the artifact intensities in `artifact_source`.
        artifacts_mask: the ArrayKey of the artifacts' alpha (blend weight, in [0, 1]) in
            `artifact_source`.
        deformation_strength: how far, in voxels, each half of a folded section moves
            towards the fold line (default 20).
        axis: the spatial axis (index) along which sections are taken (default 0: z).
        p: probability of augmenting a request at all (default 1.0).

    Example::

        artifact_source = (
            gp.Hdf5Source("artifacts.hdf", {artifacts: "raw", artifacts_mask: "mask"})
            + gp.RandomLocation()
            + gp.Normalize(artifacts)
            + gp.Normalize(artifacts_mask)
        )
        pipeline += gp.DefectAugment(
            raw,
            prob_missing=0.03,
            prob_low_contrast=0.01,
            prob_artifact=0.03,
            prob_deform=0.02,
            artifact_source=artifact_source,
            artifacts=artifacts,
            artifacts_mask=artifacts_mask,
        )
    """

    def __init__(
        self,
        intensities: ArrayKey,
        prob_missing: float = 0.05,
        prob_low_contrast: float = 0.05,
        prob_artifact: float = 0.0,
        prob_deform: float = 0.0,
        contrast_scale: float = 0.1,
        artifact_source: Any = None,
        artifacts: ArrayKey | None = None,
        artifacts_mask: ArrayKey | None = None,
        deformation_strength: int = 20,
        axis: int = 0,
        p: float = 1.0,
    ) -> None:
        self.intensities = intensities
        self.prob_missing = float(prob_missing)
        self.prob_low_contrast = float(prob_low_contrast)
        self.prob_artifact = float(prob_artifact)
        self.prob_deform = float(prob_deform)
        self.contrast_scale = float(contrast_scale)
        self.artifact_source = artifact_source
        self.artifacts = artifacts
        self.artifacts_mask = artifacts_mask
        self.deformation_strength = deformation_strength
        self.axis = int(axis)
        self.p = _check_p("DefectAugment", p)
        probs = (self.prob_missing, self.prob_low_contrast, self.prob_artifact, self.prob_deform)
        if min(probs) < 0 or sum(probs) > 1 + 1e-9:
            raise ValueError(
                f"DefectAugment: probabilities must be >= 0 and sum to at most 1, got {probs}"
            )
        self._artifact_pipeline: Pipeline | None = None

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.intensities)
        if self.prob_artifact > 0:
            if (
                self.artifact_source is None
                or self.artifacts is None
                or self.artifacts_mask is None
            ):
                raise PipelineSetupError(
                    f"{self.name}: prob_artifact > 0 needs artifact_source, artifacts and "
                    "artifacts_mask"
                )
            pipeline = Pipeline.of(self.artifact_source)
            pipeline.setup()
            self._artifact_pipeline = pipeline
            for key in (self.artifacts, self.artifacts_mask):
                if key not in pipeline.spec:
                    pipeline.teardown()
                    self._artifact_pipeline = None
                    raise PipelineSetupError(
                        f"{self.name}: artifact_source does not provide {key} "
                        f"(provides {sorted(pipeline.spec)})"
                    )
        return upstream_spec

    def teardown(self) -> None:
        if self._artifact_pipeline is not None:
            self._artifact_pipeline.teardown()
            self._artifact_pipeline = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_artifact_pipeline"] = None  # rebuilt by setup where the node is unpickled
        return state

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        if rng.random() >= self.p or self.intensities not in request:
            return request, None
        spec = request[self.intensities]
        dims = spec.roi.dims
        vs = Coordinate(spec.voxel_size)
        if not 0 <= self.axis < dims:
            raise PipelineRequestError(
                f"{self.name}: axis {self.axis} is not one of the {dims} spatial axes of "
                f"{self.intensities}"
            )
        n = spec.roi.shape[self.axis] // vs[self.axis]
        bounds = np.cumsum(
            [self.prob_missing, self.prob_low_contrast, self.prob_artifact, self.prob_deform]
        )
        plan: dict[int, tuple] = {}
        plane = [d for d in range(dims) if d != self.axis]
        plane_shape = [spec.roi.shape[d] // vs[d] for d in plane]
        for s, r in enumerate(rng.random(n)):
            if r < bounds[0]:
                plan[s] = (MISSING,)
            elif r < bounds[1]:
                plan[s] = (LOW_CONTRAST,)
            elif r < bounds[2]:
                plan[s] = (ARTIFACT, int(rng.integers(2**63)))
            elif r < bounds[3]:
                if dims != 3:
                    raise PipelineRequestError(
                        f"{self.name}: folds (prob_deform) need a 3D {self.intensities}, got {dims}D"
                    )
                point = [rng.uniform(0.25, 0.75) * (k - 1) for k in plane_shape]
                plan[s] = (DEFORM, point, float(rng.uniform(0, math.pi)))
        if not plan:
            return request, None
        upstream = request.copy()
        margin = 0
        if any(v[0] == DEFORM for v in plan.values()):
            margin = int(math.ceil(float(self.deformation_strength))) + 1
            grow = Coordinate(0 if d == self.axis else margin * vs[d] for d in range(dims))
            roi = spec.roi.grow(grow, grow)
            have = self.upstream_spec[self.intensities].roi
            if have is not None and not have.unbounded:
                roi = roi.intersect(have).union(spec.roi)
            upstream[self.intensities] = spec.replace(roi=roi)
        return upstream, (plan, spec.roi, margin)

    def _artifact(self, section_roi: Roi, seed: int, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
        request = BatchRequest(random_seed=seed)
        request[self.artifacts] = ArraySpec(roi=section_roi)
        request[self.artifacts_mask] = ArraySpec(roi=section_roi)
        batch = self._artifact_pipeline.request_batch(request)  # type: ignore[union-attr]
        raw = batch[self.artifacts].data
        alpha = batch[self.artifacts_mask].data
        try:
            return raw.reshape(shape), alpha.reshape(shape)
        except ValueError:
            raise PipelineRequestError(
                f"{self.name}: artifact_source returned {self.artifacts} of shape {raw.shape} "
                f"and {self.artifacts_mask} of shape {alpha.shape} for a section of shape {shape}"
            ) from None

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        plan, roi, margin = ctx
        array = batch[self.intensities]
        dims = roi.dims
        vs = Coordinate(array.spec.voxel_size)
        lead = array.data.ndim - dims
        ax = lead + self.axis
        out = array.crop(roi, copy=True).data
        context = None
        if margin:
            context = _padded(array, roi, margin, self.axis)
        for s, op in sorted(plan.items()):
            index = [slice(None)] * out.ndim
            index[ax] = s
            index = tuple(index)
            if op[0] == MISSING:
                out[index] = 0
            elif op[0] == LOW_CONTRAST:
                out[index] = low_contrast(out[index], self.contrast_scale)
            elif op[0] == ARTIFACT:
                offset = list(roi.offset)
                offset[self.axis] += s * vs[self.axis]
                shape = list(roi.shape)
                shape[self.axis] = vs[self.axis]
                section_shape = out[index].shape[lead:]
                raw, alpha = self._artifact(Roi(offset, shape), op[1], section_shape)
                out[index] = blend(out[index], raw, alpha)
            elif op[0] == DEFORM:
                section = np.take(context, s, axis=ax)
                out[index] = fold(section, op[1], op[2], float(self.deformation_strength), margin)
        batch[self.intensities] = Array(out, array.spec.replace(roi=roi), array.attrs)
        return batch


def _padded(array: Array, roi: Roi, margin: int, axis: int) -> np.ndarray:
    """`array` cropped/padded (edge values) to `roi` grown by `margin` voxels in-plane."""
    vs = array.spec.voxel_size
    dims = roi.dims
    grow = Coordinate(0 if d == axis else margin * vs[d] for d in range(dims))
    want = roi.grow(grow, grow)
    have = array.spec.roi.intersect(want)
    data = array.crop(have, copy=False).data
    lead = data.ndim - dims
    before = (have.begin - want.begin) / vs
    after = (want.end - have.end) / vs
    pad = [(0, 0)] * lead + [(int(b), int(a)) for b, a in zip(before, after)]
    return np.pad(data, pad, mode="edge") if any(p != (0, 0) for p in pad) else data


def _fill(array: Array, roi: Roi) -> Array:
    """`array` over exactly `roi`: cropped, or zero-filled where it has no data."""
    if array.spec.roi == roi:
        return array
    if array.spec.roi.contains(roi):
        return array.crop(roi, copy=False)
    vs = array.spec.voxel_size
    lead = array.data.shape[: array.data.ndim - roi.dims]
    data = np.zeros(lead + tuple(roi.shape / vs), dtype=array.data.dtype)
    common = array.spec.roi.intersect(roi)
    if not common.empty:
        target = (Ellipsis,) + ((common - roi.offset) / vs).to_slices()
        data[target] = array.crop(common, copy=False).data
    return Array(data, array.spec.replace(roi=roi), array.attrs)


def _unshift(
    points: np.ndarray, shifts: np.ndarray, plane: list, axis: int, step: int, first: int
) -> np.ndarray:
    """Where upstream points land downstream: their section's shift taken off."""
    section = np.clip(np.floor(points[:, axis] / step).astype(np.int64) - first, 0, len(shifts) - 1)
    moved = points.copy()
    for i, d in enumerate(plane):
        moved[:, d] -= shifts[section, i]
    return moved


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
