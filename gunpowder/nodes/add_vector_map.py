"""`AddVectorMap`: vectors from the voxels around source points to their partner points."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..graph import Graph
from ..pipeline import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, ProviderSpec
from ..transforms import vector_map as kernels
from ._common import (
    array_in,
    ask_for,
    ask_graph,
    check_keys_dict,
    clip_to,
    graph_spec_of,
    grown,
    margin_voxels,
    spatial_array_spec,
)


def _is_key_pair(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(k, GraphKey) for k in value)
    )


class AddVectorMap(Node):
    """Create vector maps: near a source point, each voxel points to a partner of that point.

    For synaptic partner prediction: around every source (e.g. presynaptic) point, voxels
    within `radius_phys` hold the vector, in world units, from the voxel to a target (e.g.
    postsynaptic) point listed in the source's `partner_ids` attribute. A voxel v of the map
    stands for the world position roi.offset + v * voxel_size; it is near a source if its
    distance to the voxel containing the source is at most `radius_phys` and, with a
    stay-inside array, it has the object id found at the source. A voxel near several sources
    belongs to the nearest. Each map is float32 with one channel per spatial axis, 0 away from
    sources. The node asks upstream for the source points within `radius_phys` of the map (so
    sources just outside still reach in) and for the target points `pad_for_partners` further.

    Args:
        src_and_trg_points: dict from the ArrayKey of each vector map to create to a pair
            (source GraphKey, target GraphKey). Source nodes name their partners (ids of
            target nodes) in the attribute `partner_ids`.
        voxel_sizes: dict from each vector map's ArrayKey to its voxel size (a Coordinate).
        radius_phys: the radius, in world units (> 0), around a source within which voxels
            get vectors.
        partner_criterion: "min_distance" (all vectors of a source point to its partner
            nearest to the source) or "all" (the source's voxels are split in near-equal
            shares among its partners, each voxel pointing to one of them; partners far from
            the source choose their nearest voxels first).
        stayinside_array_keys: optional dict from a vector map's ArrayKey to an ArrayKey of
            object labels (same voxel size as the map); vectors stay inside the object of the
            source. A source whose voxel is outside what upstream provides of these labels is
            left out. Default None: no restriction.
        pad_for_partners: how far, in world units per axis (>= 0), beyond the source points
            the target points are requested, so partners slightly outside are found. The maps
            are provided on the source points' ROI shrunk by this (default (0, 0, 0)).

    Example::

        pipeline += gp.AddVectorMap(
            src_and_trg_points={vectors: (presyn, postsyn)},
            voxel_sizes={vectors: gp.Coordinate(40, 4, 4)},
            radius_phys=60,
            partner_criterion="min_distance",
            stayinside_array_keys={vectors: gt_labels},
            pad_for_partners=(0, 400, 400),
        )
    """

    def __init__(
        self,
        src_and_trg_points: dict[ArrayKey, tuple[GraphKey, GraphKey]],
        voxel_sizes: dict[ArrayKey, Any],
        radius_phys: float,
        partner_criterion: str,
        stayinside_array_keys: dict[ArrayKey, ArrayKey] | None = None,
        pad_for_partners: Sequence[int] = (0, 0, 0),
    ) -> None:
        name = "AddVectorMap"
        check_keys_dict(name, "src_and_trg_points", src_and_trg_points, ArrayKey, _is_key_pair)
        if not isinstance(voxel_sizes, dict):
            raise ValueError(f"{name}: voxel_sizes must be a dict, got {voxel_sizes!r}")
        for key in src_and_trg_points:
            if key not in voxel_sizes:
                raise ValueError(f"{name}: voxel_sizes has no entry for {key}")
        self.voxel_sizes = {k: Coordinate(v) for k, v in voxel_sizes.items()}
        for key, vs in self.voxel_sizes.items():
            if any(v is None or v <= 0 for v in vs):
                raise ValueError(f"{name}: voxel_sizes[{key}] must be positive, got {vs}")
        if not isinstance(radius_phys, (int, float, np.number)) or not radius_phys > 0:
            raise ValueError(f"{name}: radius_phys must be a positive number, got {radius_phys!r}")
        if partner_criterion not in kernels.CRITERIA:
            raise ValueError(
                f"{name}: partner_criterion must be one of {kernels.CRITERIA}, got "
                f"{partner_criterion!r}"
            )
        stayinside = dict(stayinside_array_keys or {})
        for key, labels in stayinside.items():
            if key not in src_and_trg_points or not isinstance(labels, ArrayKey):
                raise ValueError(
                    f"{name}: stayinside_array_keys must map vector map keys of "
                    f"src_and_trg_points to ArrayKeys, got {key!r}: {labels!r}"
                )
        pad = Coordinate(pad_for_partners)
        if any(p is None or p < 0 for p in pad):
            raise ValueError(f"{name}: pad_for_partners must be >= 0, got {pad_for_partners!r}")
        self.src_and_trg_points = {k: (v[0], v[1]) for k, v in src_and_trg_points.items()}
        self.radius_phys = float(radius_phys)
        self.partner_criterion = partner_criterion
        self.stayinside_array_keys = stayinside
        self.pad_for_partners = pad

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        spec = upstream_spec.copy()
        for key, (src, trg) in self.src_and_trg_points.items():
            src_spec = graph_spec_of(self, upstream_spec, src)
            graph_spec_of(self, upstream_spec, trg)
            vs = self.voxel_sizes[key]
            if src_spec.roi is not None and src_spec.roi.dims != vs.dims:
                raise PipelineSetupError(
                    f"{self.name}: {src} is {src_spec.roi.dims}D but voxel_sizes[{key}] is {vs}"
                )
            if self.pad_for_partners.dims != vs.dims and not any(self.pad_for_partners):
                self.pad_for_partners = Coordinate((0,) * vs.dims)  # the 3D default, any dims
            if self.pad_for_partners.dims != vs.dims:
                raise PipelineSetupError(
                    f"{self.name}: pad_for_partners {self.pad_for_partners} does not match the "
                    f"{vs.dims}D voxel size of {key}"
                )
            labels = self.stayinside_array_keys.get(key)
            if labels is not None:
                labels_vs = spatial_array_spec(self, upstream_spec, labels).voxel_size
                if labels_vs != vs:
                    raise PipelineSetupError(
                        f"{self.name}: {labels} has voxel size {labels_vs}, but the vector map "
                        f"{key} has {vs}; they must match"
                    )
            roi = None
            if src_spec.roi is not None:
                pad = self.pad_for_partners
                roi = src_spec.roi.grow(-pad, -pad).snap_to_grid(vs, mode="shrink")
            spec[key] = ArraySpec(roi=roi, voxel_size=vs, interpolatable=False, dtype=np.float32)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        todo = {}
        for key, (src, trg) in self.src_and_trg_points.items():
            if key not in request:
                continue
            del upstream[key]
            vs = self.voxel_sizes[key]
            context = grown(request[key].roi, margin_voxels(self.radius_phys, vs), vs)
            labels = self.stayinside_array_keys.get(key)
            if labels is not None:
                provided = self.upstream_spec[labels].roi
                if provided is not None:
                    context = context.intersect(provided.snap_to_grid(vs, mode="shrink"))
                ask_for(upstream, labels, context, vs)
            ask_graph(upstream, src, clip_to(context, self.upstream_spec[src].roi))
            pad = self.pad_for_partners
            ask_graph(upstream, trg, clip_to(context.grow(pad, pad), self.upstream_spec[trg].roi))
            todo[key] = context
        return upstream, todo

    def process(self, batch: Batch, ctx: Any) -> Batch:
        for key, context in ctx.items():
            src, trg = self.src_and_trg_points[key]
            vs = self.voxel_sizes[key]
            sources, partners = self._sources_and_partners(batch[src], batch[trg], context)
            labels = self.stayinside_array_keys.get(key)
            mask = None if labels is None else array_in(batch, labels, context).data
            data = kernels.vector_map(
                shape=context.shape / vs,
                origin=context.offset,
                voxel_size=vs,
                sources=sources,
                partners=partners,
                radius=self.radius_phys,
                criterion=self.partner_criterion,
                mask=mask,
            )
            spec = ArraySpec(roi=context, voxel_size=vs, interpolatable=False, dtype=np.float32)
            batch[key] = Array(data, spec)
        return batch

    @staticmethod
    def _sources_and_partners(
        src: Graph, trg: Graph, roi: Roi
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Locations of the (non-temporary) source nodes in `roi` and of their partners."""
        sources, partners = [], []
        for node in src.nodes:
            if node.temporary or not roi.contains(tuple(node.location)):
                continue
            ids = node.attrs.get("partner_ids", []) or []
            locs = [trg.node(i).location for i in ids if trg.contains(int(i))]
            sources.append(node.location)
            partners.append(np.array(locs, dtype=np.float64).reshape(-1, roi.dims))
        return np.array(sources, dtype=np.float64).reshape(-1, roi.dims), partners


__all__ = ["AddVectorMap"]
