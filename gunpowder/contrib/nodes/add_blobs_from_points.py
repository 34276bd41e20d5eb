"""`AddBlobsFromPoints`: label arrays with a ball ("blob") around every point."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...batch import Array, Batch
from ...errors import PipelineSetupError
from ...geometry import Coordinate
from ...graph import Graph
from ...nodes._common import (
    array_in,
    ask_for,
    ask_graph,
    clip_to,
    graph_spec_of,
    grown,
    margin_voxels,
    spatial_array_spec,
)
from ...pipeline import Node
from ...spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, ProviderSpec
from ...transforms.blobs import place_blobs

_REQUIRED = (
    "points_key",
    "output_array_key",
    "output_array_dtype",
    "radius",
    "output_voxel_size",
    "restrictive_mask_key",
)
_OPTIONAL = ("id_mapper", "partner_points", "max_desired_overlap")


def _check_settings(name: str, settings: Any) -> dict:
    if not isinstance(settings, dict):
        raise ValueError(f"AddBlobsFromPoints: blob_settings[{name!r}] must be a dict")
    missing = [k for k in _REQUIRED if k not in settings]
    if missing:
        raise ValueError(f"AddBlobsFromPoints: blob_settings[{name!r}] lacks {missing}")
    unknown = [k for k in settings if k not in _REQUIRED + _OPTIONAL]
    if unknown:
        raise ValueError(f"AddBlobsFromPoints: blob_settings[{name!r}] has unknown {unknown}")
    checks = {
        "points_key": GraphKey,
        "output_array_key": ArrayKey,
        "restrictive_mask_key": ArrayKey,
    }
    for field, kind in checks.items():
        if not isinstance(settings[field], kind):
            raise ValueError(
                f"AddBlobsFromPoints: blob_settings[{name!r}][{field!r}] must be a "
                f"{kind.__name__}, got {settings[field]!r}"
            )
    partner = settings.get("partner_points")
    if partner is not None and not isinstance(partner, GraphKey):
        raise ValueError(
            f"AddBlobsFromPoints: blob_settings[{name!r}]['partner_points'] must be a GraphKey"
        )
    radius = settings["radius"]
    if not isinstance(radius, (int, float, np.number)) or radius < 0:
        raise ValueError(
            f"AddBlobsFromPoints: blob_settings[{name!r}]['radius'] must be >= 0, got {radius!r}"
        )
    try:
        dtype = np.dtype(settings["output_array_dtype"])
    except TypeError as e:
        raise ValueError(
            f"AddBlobsFromPoints: blob_settings[{name!r}]['output_array_dtype'] is not a dtype"
        ) from e
    mapper = settings.get("id_mapper")
    if mapper is not None and not (callable(mapper) and hasattr(mapper, "make_map")):
        raise ValueError(
            f"AddBlobsFromPoints: blob_settings[{name!r}]['id_mapper'] must be callable and "
            "have a make_map method"
        )
    return {
        **settings,
        "output_array_dtype": dtype,
        "output_voxel_size": Coordinate(settings["output_voxel_size"]),
        "radius": float(radius),
        "id_mapper": mapper,
        "partner_points": partner,
    }


class AddBlobsFromPoints(Node):
    """Create arrays with a ball ("blob") of an id around every point of a graph.

    For each entry of `blob_settings`, voxels within `radius` (world units) of the voxel that
    contains a point get the point's `synapse_id` attribute (its node id if it has none, or
    what the `id_mapper` maps it to), restricted to the voxels of the restrictive mask that
    carry the mask's value at the point; a point outside what upstream provides of the mask
    paints nothing. Later points overwrite earlier ones; 0 elsewhere. With `partner_points`,
    points whose first `partner_ids` entry is not a node of that graph are left out. Points
    within `radius` of the array are used, so blobs do not depend on where a batch was cut.
    The array gets the attributes `point_ids` and `synapse_ids` (of the points used) and,
    with an id mapper that has `get_map`, `id_mapping` (an (n, 2) array).

    Args:
        blob_settings: dict from a name to a dict with the entries: 'points_key' (GraphKey
            of the points), 'output_array_key' (ArrayKey to create), 'output_array_dtype'
            (its dtype), 'radius' (the blob radius, world units), 'output_voxel_size' (the
            voxel size, equal to the restrictive mask's), 'restrictive_mask_key' (ArrayKey of
            labels that blobs stay inside), and optionally 'id_mapper' (an object with
            `make_map(points)`, called once per batch with a dict GraphKey -> Graph of all
            settings' points, and `__call__(id)`), 'partner_points' (a GraphKey) and
            'max_desired_overlap' (accepted, unused).

    Example::

        pipeline += AddBlobsFromPoints({
            "PRESYN": {
                "points_key": presyn,
                "output_array_key": presyn_blobs,
                "output_array_dtype": "int64",
                "radius": 60,
                "output_voxel_size": (40, 4, 4),
                "restrictive_mask_key": gt_labels,
                "partner_points": postsyn,
            }
        })
    """

    def __init__(self, blob_settings: dict[str, dict[str, Any]]) -> None:
        if not isinstance(blob_settings, dict) or not blob_settings:
            raise ValueError(
                f"AddBlobsFromPoints: blob_settings must be a non-empty dict, got {blob_settings!r}"
            )
        self.blob_settings = {n: _check_settings(n, s) for n, s in blob_settings.items()}
        outputs = [s["output_array_key"] for s in self.blob_settings.values()]
        if len(set(outputs)) != len(outputs):
            raise ValueError("AddBlobsFromPoints: two blob settings create the same array")

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        spec = upstream_spec.copy()
        for name, s in self.blob_settings.items():
            graph_spec_of(self, upstream_spec, s["points_key"])
            if s["partner_points"] is not None:
                graph_spec_of(self, upstream_spec, s["partner_points"])
            mask = spatial_array_spec(self, upstream_spec, s["restrictive_mask_key"])
            if mask.voxel_size != s["output_voxel_size"]:
                raise PipelineSetupError(
                    f"{self.name}: blob setting {name!r}: output_voxel_size "
                    f"{s['output_voxel_size']} differs from the voxel size {mask.voxel_size} of "
                    f"{s['restrictive_mask_key']}"
                )
            spec[s["output_array_key"]] = mask.replace(
                dtype=s["output_array_dtype"], interpolatable=False
            )
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        todo = {}
        for name, s in self.blob_settings.items():
            key = s["output_array_key"]
            if key not in request:
                continue
            del upstream[key]
            mask = s["restrictive_mask_key"]
            vs = s["output_voxel_size"]
            context = grown(request[key].roi, margin_voxels(s["radius"], vs), vs)
            context = clip_to(context, self.upstream_spec[mask].roi)
            ask_for(upstream, mask, context, vs)
            for graph in (s["points_key"], s["partner_points"]):
                if graph is not None:
                    ask_graph(upstream, graph, clip_to(context, self.upstream_spec[graph].roi))
            todo[name] = context
        return upstream, todo

    def _points(self, batch: Batch, s: dict, roi: Any) -> list:
        graph: Graph = batch[s["points_key"]]
        partners: Graph | None = None
        if s["partner_points"] is not None:
            partners = batch[s["partner_points"]]
        kept = []
        for node in graph.nodes:
            if node.temporary or not roi.contains(tuple(node.location)):
                continue
            if partners is not None:
                ids = node.attrs.get("partner_ids") or []
                if not ids or not partners.contains(int(ids[0])):
                    continue
            kept.append(node)
        return kept

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if not ctx:
            return batch
        points = {name: self._points(batch, self.blob_settings[name], c) for name, c in ctx.items()}
        all_points = {}
        for name, nodes in points.items():
            key = self.blob_settings[name]["points_key"]
            all_points[key] = Graph([n.copy() for n in nodes], [], batch[key].spec)
        for name, context in ctx.items():
            s = self.blob_settings[name]
            mapper = s["id_mapper"]
            if mapper is not None:
                mapper.make_map(all_points)
            vs = s["output_voxel_size"]
            mask = array_in(batch, s["restrictive_mask_key"], context).data
            nodes = points[name]
            synapse_ids = [n.attrs.get("synapse_id", n.id) for n in nodes]
            values = [mapper(i) for i in synapse_ids] if mapper is not None else synapse_ids
            origin = np.asarray(context.offset, dtype=np.float64)
            centres = np.array(
                [np.floor((n.location - origin) / np.asarray(vs)) for n in nodes], dtype=np.int64
            ).reshape(-1, context.dims)
            data = place_blobs(
                context.shape / vs, centres, values, s["radius"], vs, mask, s["output_array_dtype"]
            )
            attrs: dict[str, Any] = {
                "point_ids": [n.id for n in nodes],
                "synapse_ids": synapse_ids,
            }
            if mapper is not None and hasattr(mapper, "get_map"):
                attrs["id_mapping"] = np.array(list(mapper.get_map().items()))
            spec = ArraySpec(roi=context, voxel_size=vs, interpolatable=False, dtype=data.dtype)
            batch[s["output_array_key"]] = Array(data, spec, attrs)
        return batch


__all__ = ["AddBlobsFromPoints"]
