"""The seed-era (2017) face: `BatchSpec`; and, for old imports, the 1.x bases and `adapt`.

(`SolverParameters`, the seed-era `Train` and `ElasticAugmentation` are in `gunpowder.seed`
and `gunpowder.nodes.elastic_augmentation`; docs/seed-api.md maps every 2017 name.)

A 1.x subclass keeps its methods (`setup()`, `prepare(request)`, `process(batch, request)`,
`provide(request)`); an adapter turns it into a functional node. 1.x code that draws from
the global `random`/`np.random` still gets reproducible batches: the adapter seeds those from
the node's own Generator before each call.
"""

from __future__ import annotations

from typing import Any

from .geometry import Coordinate
from .spec import ArrayKey, ArrayKeys, ArraySpec, BatchRequest

# the seed-era Train's prediction (registered here so `ArrayKeys.PREDICTED_AFFINITIES` works)
PREDICTED_AFFINITIES = ArrayKey("PREDICTED_AFFINITIES")


class BatchSpec:
    """The seed-era request helper: input/output shapes in voxels for the standard keys.

    `BatchSpec((84, 268, 268), (56, 56, 56), with_gt=True).request(voxel_size)` (or
    `.to_request()`) gives a `BatchRequest` for RAW (input shape) and GT_LABELS, GT_MASK,
    GT_AFFINITIES, PREDICTED_AFFINITIES (output shape) as asked (`with_gt`, `with_gt_mask`,
    `with_gt_affinities`, `with_prediction`).

    `pipeline.request_batch(batch_spec)` goes through `serve_from`: nearest-neighbour
    affinities (and their mask, from GT_MASK) are computed from GT_LABELS when the pipeline
    provides no GT_AFFINITIES, and a PREDICTED_AFFINITIES the pipeline makes (a seed-era
    `Train` at its end) is returned with affinities.
    """

    def __init__(
        self,
        input_shape: Any,
        output_shape: Any,
        input_offset: Any = None,
        output_offset: Any = None,
        resolution: Any = None,
        with_volumes: Any = None,
        with_gt: bool = False,
        with_gt_mask: bool = False,
        with_gt_affinities: bool = False,
        with_prediction: bool = False,
        voxel_size: Any = None,
    ) -> None:
        self.input_shape = Coordinate(input_shape)
        self.output_shape = Coordinate(output_shape)
        self.input_offset = None if input_offset is None else Coordinate(input_offset)
        self.output_offset = None if output_offset is None else Coordinate(output_offset)
        vs = voxel_size if voxel_size is not None else resolution
        self.explicit_voxel_size = vs is not None
        self.voxel_size = (
            Coordinate(vs) if vs is not None else Coordinate((1,) * len(self.input_shape))
        )
        self.with_gt = with_gt
        self.with_gt_mask = with_gt_mask
        self.with_gt_affinities = with_gt_affinities
        self.with_prediction = with_prediction
        self.with_volumes = list(with_volumes or [])

    def output_keys(self) -> list[ArrayKey]:
        keys = []
        if self.with_gt:
            keys.append(ArrayKeys.GT_LABELS)
        if self.with_gt_mask:
            keys.append(ArrayKeys.GT_MASK)
        if self.with_gt_affinities:
            keys.append(ArrayKeys.GT_AFFINITIES)
        if self.with_prediction:
            keys.append(PREDICTED_AFFINITIES)
        keys.extend(k for k in self.with_volumes if k not in keys)
        return keys

    def to_request(self, voxel_size: Any = None, random_seed: int | None = None) -> BatchRequest:
        explicit = self.explicit_voxel_size
        vs = self.voxel_size if voxel_size is None or explicit else Coordinate(voxel_size)
        request = BatchRequest(random_seed=random_seed)
        request.add(ArrayKeys.RAW, self.input_shape * vs, voxel_size=vs)
        for key in self.output_keys():
            request.add(key, self.output_shape * vs, voxel_size=vs)
        if self.input_offset is not None or self.output_offset is not None:
            from .geometry import Roi

            if self.input_offset is not None:
                request[ArrayKeys.RAW] = ArraySpec(
                    roi=Roi(self.input_offset * vs, self.input_shape * vs), voxel_size=vs
                )
            if self.output_offset is not None:
                for key in self.output_keys():
                    request[key] = ArraySpec(
                        roi=Roi(self.output_offset * vs, self.output_shape * vs), voxel_size=vs
                    )
        return request

    request = to_request

    def serve_from(self, pipeline: Any) -> Any:
        """The batch for this spec from the built `pipeline` (what `request_batch` does).

        The voxel size is RAW's upstream. GT_AFFINITIES asked for but not provided are
        computed from GT_LABELS with the nearest-neighbour offsets (`-identity`), masked by
        GT_MASK where provided; the prediction of a seed-era `Train` comes along with them.
        """
        from .engine import conform_batch, fresh_seed, node_rng
        from .errors import PipelineRequestError

        spec = pipeline.node.spec
        raw = ArrayKeys.RAW
        voxel_size = spec[raw].voxel_size if spec is not None and raw in spec else None
        request = self.to_request(voxel_size=voxel_size)
        gt = ArrayKeys.GT_AFFINITIES
        if (
            gt in request
            and spec is not None
            and PREDICTED_AFFINITIES in spec
            and PREDICTED_AFFINITIES not in request
        ):
            request[PREDICTED_AFFINITIES] = request[gt].copy()
        if spec is None or gt not in request or gt in spec:
            return pipeline.request_batch(request)
        labels = ArrayKeys.GT_LABELS
        if labels not in spec:
            raise PipelineRequestError(
                f"BatchSpec: with_gt_affinities=True, but the pipeline provides neither {gt} "
                f"nor {labels} to compute them from (it provides {sorted(spec)})"
            )
        node = _affinities_for(spec)
        seed = fresh_seed()
        upstream, ctx = node.prepare(request, node_rng(seed, (1 << 30,)))
        upstream.random_seed = seed
        batch = pipeline.request_batch(upstream)
        batch = node.process(batch, ctx)
        batch = conform_batch(node, batch, request)
        batch.random_seed = seed
        return batch

    def __repr__(self) -> str:
        return (
            f"BatchSpec(input_shape={self.input_shape}, output_shape={self.output_shape}, "
            f"keys={[ArrayKeys.RAW] + self.output_keys()})"
        )


def _affinities_for(spec: Any) -> Any:
    """AddAffinities (nearest neighbours) set up on `spec`, run outside a pipeline."""
    import numpy as np

    from .nodes.add_affinities import AddAffinities

    labels = spec[ArrayKeys.GT_LABELS]
    dims = labels.voxel_size.dims if labels.voxel_size is not None else 3
    mask = ArrayKeys.GT_MASK if ArrayKeys.GT_MASK in spec else None
    node = AddAffinities(
        (-np.eye(dims, dtype=int)).tolist(),
        labels=ArrayKeys.GT_LABELS,
        affinities=ArrayKeys.GT_AFFINITIES,
        labels_mask=mask,
        affinities_mask=ArrayKeys.GT_AFFINITIES_MASK if mask is not None else None,
    )
    node.upstream_spec = spec
    node.spec = node.setup(spec)
    return node


def __getattr__(name: str) -> Any:
    """`BatchProvider`, `BatchFilter`, `adapt` moved to `gunpowder.nodes`; still found here."""
    if name in ("BatchProvider", "BatchFilter", "adapt", "MultiNode"):
        import importlib

        where = {
            "BatchProvider": "gunpowder.nodes.batch_provider",
            "BatchFilter": "gunpowder.nodes.batch_filter",
            "adapt": "gunpowder.nodes._legacy",
            "MultiNode": "gunpowder.node",
        }[name]
        return getattr(importlib.import_module(where), name)
    raise AttributeError(f"module 'gunpowder.compat' has no attribute {name!r}")
