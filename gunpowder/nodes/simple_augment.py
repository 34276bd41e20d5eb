"""`SimpleAugment`: random mirrors and transposes of all arrays and graphs of a batch (1.x)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate
from ..node import Node
from ..spec import BatchRequest, ProviderSpec
from ..transforms.augment_simple import (
    MirrorTranspose,
    allowed_permutations,
    permutation_weights,
)
from . import _args as args
from ._warp import move_graph


class MirrorTransposeContext(NamedTuple):
    """The drawn mirror/transpose and the request it was drawn for."""

    transform: Any
    request: Any


class SimpleAugment(Node):
    """Randomly mirror and transpose spatial axes of every array and graph (1.x arguments).

    Cheap, lossless augmentation: the network sees each training example in all
    orientations. One mirror/transpose is drawn per request and applied to every array and
    graph alike. Mirrors flip the requested region onto itself (about the centre of the union
    of the requested ROIs), so a request of the whole data stays inside the data; transposes
    are about a centre on the voxel grid, so no half-voxel shifts occur. The upstream request
    is the mirrored/transposed ROI. As in 1.x, a mirror flag names an axis of the upstream
    data (mirror, then transpose).

    Args:
        mirror_only: spatial axes (indices) that may be mirrored (default None: all).
        transpose_only: spatial axes that may be permuted among each other (default None:
            all, but only among axes whose voxel sizes agree in every requested array;
            naming axes of different voxel sizes is an error).
        mirror_probs: probability per spatial axis of mirroring it (default None: 0.5 each).
        transpose_probs: None (every allowed permutation equally likely), a
            {permutation tuple: weight} dict (others get 0), or per-axis probabilities of
            being moved by the permutation.
        p: probability of augmenting a request at all (default 1.0).

    Example::

        # mirror all axes, transpose only y and x (z has a different voxel size)
        pipeline += gp.SimpleAugment(transpose_only=[1, 2])
    """

    def __init__(
        self,
        mirror_only: Sequence[int] | None = None,
        transpose_only: Sequence[int] | None = None,
        mirror_probs: Sequence[float] | None = None,
        transpose_probs: Sequence[float] | dict | None = None,
        p: float = 1.0,
    ) -> None:
        name = "SimpleAugment"
        self.mirror_only = args.axes(name, "mirror_only", mirror_only)
        self.transpose_only = args.axes(name, "transpose_only", transpose_only)
        self.mirror_probs = (
            None if mirror_probs is None else args.probabilities(name, "mirror_probs", mirror_probs)
        )
        if isinstance(transpose_probs, dict):
            for perm, weight in transpose_probs.items():
                perm = args.axes(name, f"transpose_probs key {perm!r}", perm)
                if sorted(perm) != list(range(len(perm))):
                    raise ValueError(
                        f"{name}: transpose_probs keys must be permutations of (0, ..., n-1), "
                        f"got {perm!r}"
                    )
                args.non_negative(name, f"transpose_probs[{perm!r}]", weight)
        elif transpose_probs is not None:
            transpose_probs = args.probabilities(name, "transpose_probs", transpose_probs)
        self.transpose_probs = transpose_probs
        self.p = args.probability(name, "p", p)

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        dims = {
            s.roi.dims
            for s in upstream_spec.values()
            if s.roi is not None and not getattr(s, "nonspatial", False)
        }
        if len(dims) == 1:
            self._check_dims(dims.pop(), PipelineSetupError)
        return upstream_spec

    def _check_dims(self, dims: int, error: type) -> None:
        """Raise `error` unless the axis arguments fit `dims` spatial axes."""
        for axes, what in (
            (self.mirror_only, "mirror_only"),
            (self.transpose_only, "transpose_only"),
        ):
            if axes is not None and any(a >= dims for a in axes):
                raise error(
                    f"{self.name}: {what} {axes} names axes outside the {dims} spatial axes"
                )
        for probs, what in ((self.mirror_probs, "mirror_probs"), (self.transpose_probs, "")):
            if what == "" and isinstance(probs, dict):
                bad = [k for k in probs if len(k) != dims]
                if bad:
                    raise error(
                        f"{self.name}: transpose_probs keys {bad} are not permutations of the "
                        f"{dims} spatial axes"
                    )
                continue
            if probs is not None and len(probs) != dims:
                raise error(
                    f"{self.name}: {what or 'transpose_probs'} needs one probability per "
                    f"spatial axis ({dims}), got {probs}"
                )

    def _draw(self, request: BatchRequest, rng: np.random.Generator) -> MirrorTranspose | None:
        specs = {k: s for k, s in request.items() if s.roi is not None and not s.roi.unbounded}
        specs = {k: s for k, s in specs.items() if not getattr(s, "nonspatial", False)}
        if not specs:
            return None
        dims = next(iter(specs.values())).roi.dims
        if any(s.roi.dims != dims for s in specs.values()):
            raise PipelineRequestError(f"{self.name}: requested ROIs differ in dimensions")
        self._check_dims(dims, PipelineRequestError)
        voxel_sizes = [
            Coordinate(s.voxel_size)
            for k, s in request.array_specs.items()
            if k in specs and s.voxel_size is not None
        ]
        probs = self.mirror_probs or (0.5,) * dims
        mirror_axes = range(dims) if self.mirror_only is None else self.mirror_only
        draws = rng.random(dims)
        flags = tuple(bool(draws[a] < probs[a]) and a in mirror_axes for a in range(dims))

        axes = tuple(range(dims)) if self.transpose_only is None else self.transpose_only
        perms = allowed_permutations(dims, axes)
        compatible = [
            p for p in perms if all(vs[a] == vs[p[a]] for vs in voxel_sizes for a in range(dims))
        ]
        if self.transpose_only is not None and len(compatible) < len(perms):
            raise PipelineRequestError(
                f"{self.name}: transpose_only {self.transpose_only} mixes axes of different "
                f"voxel sizes {[tuple(v) for v in voxel_sizes]}"
            )
        weights = permutation_weights(compatible, self.transpose_probs)
        perm = compatible[int(rng.choice(len(compatible), p=weights))]

        lcm = np.ones(dims, dtype=np.int64)
        for vs in voxel_sizes:
            lcm = np.lcm(lcm, np.array(vs, dtype=np.int64))
        total = None
        for s in specs.values():
            total = s.roi if total is None else total.union(s.roi)
        # mirror about the centre of the request (twice it: b + e), snapped only where the
        # ROIs of different voxel sizes leave it off some grid; transpose about a centre on
        # every grid (1.x rounds it down), so transposed ROIs stay on their grids
        centre2 = [(b + e) // int(n) * int(n) for b, e, n in zip(total.begin, total.end, lcm)]
        centre = [(c2 // 2) // int(n) * int(n) for c2, n in zip(centre2, lcm)]
        # a mirror flag names an upstream axis: output axis d is mirrored if perm[d] is
        mirror = tuple(flags[a] for a in perm)
        return MirrorTranspose.about(perm, mirror, centre, centre2)

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        if rng.random() >= self.p:
            return request, None
        transform = self._draw(request, rng)
        if transform is None or transform.is_identity:
            return request, None
        upstream = request.copy()
        for key, spec in request.items():
            if (
                spec.roi is not None
                and not spec.roi.unbounded
                and not getattr(spec, "nonspatial", False)
            ):
                upstream[key] = spec.replace(roi=transform.source_roi(spec.roi))
        return upstream, MirrorTransposeContext(transform, request)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        transform, request = ctx
        for key, spec in request.items():
            if spec.roi is None or spec.roi.unbounded or getattr(spec, "nonspatial", False):
                continue
            value = batch[key]
            if key in request.array_specs:
                source = transform.source_roi(spec.roi)
                if value.spec.roi != source:
                    value = value.crop(source, copy=False)
                data = transform.apply(value.data)
                batch[key] = Array(data, value.spec.replace(roi=spec.roi), value.attrs)
            else:
                batch[key] = move_graph(value, transform.to_target, spec.roi, self.name, key)
        return batch
