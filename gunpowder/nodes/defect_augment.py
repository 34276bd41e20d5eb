from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..pipeline import Pipeline
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms.augment_defects import (
    blend,
    fold,
    low_contrast,
)
from . import _args as args
from ._defects import ARTIFACT, DEFORM, LOW_CONTRAST, MISSING, _padded


class DefectContext(NamedTuple):
    """The drawn defects per section, the ROI they apply to and the margin read around it."""

    plan: Any
    roi: Any
    margin: Any


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
        name = "DefectAugment"
        self.intensities = intensities
        self.prob_missing = args.probability(name, "prob_missing", prob_missing)
        self.prob_low_contrast = args.probability(name, "prob_low_contrast", prob_low_contrast)
        self.prob_artifact = args.probability(name, "prob_artifact", prob_artifact)
        self.prob_deform = args.probability(name, "prob_deform", prob_deform)
        self.contrast_scale = args.non_negative(name, "contrast_scale", contrast_scale)[0]
        self.artifact_source = artifact_source
        self.artifacts = artifacts
        self.artifacts_mask = artifacts_mask
        self.deformation_strength = args.integer(
            name, "deformation_strength", deformation_strength, minimum=0
        )
        self.axis = args.integer(name, "axis", axis, minimum=0)
        self.p = args.probability(name, "p", p)
        probs = (self.prob_missing, self.prob_low_contrast, self.prob_artifact, self.prob_deform)
        if sum(probs) > 1 + 1e-9:
            raise ValueError(
                f"{name}: prob_missing, prob_low_contrast, prob_artifact and prob_deform must "
                f"sum to at most 1, got {probs}"
            )
        self._artifact_pipeline: Pipeline | None = None

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.intensities)
        roi = upstream_spec[self.intensities].roi
        if roi is not None and self.axis >= roi.dims:
            raise PipelineSetupError(
                f"{self.name}: axis {self.axis} is not one of the {roi.dims} spatial axes of "
                f"{self.intensities}"
            )
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
        return upstream, DefectContext(plan, spec.roi, margin)

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
