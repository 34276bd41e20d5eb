"""`Hdf5PointsSource`: pre- and postsynaptic sites from a CREMI-style HDF5 annotation group."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...batch import Batch
from ...errors import PipelineSetupError
from ...geometry import Roi
from ...graph import Graph
from ...graph import Node as GraphNode
from ...pipeline import Source
from ...spec import BatchRequest, GraphKey, GraphSpec, ProviderSpec

_MEMBERS = ("ids", "locations", "presynaptic_site/partners")


def _kind(key: GraphKey) -> str:
    name = key.identifier.upper()
    if "POST" in name:
        return "post"
    if "PRE" in name:
        return "pre"
    raise ValueError(
        f"Hdf5PointsSource: can not tell whether {key} holds pre- or postsynaptic sites; its "
        "name must contain PRE or POST (e.g. PRESYN, POSTSYN)"
    )


class Hdf5PointsSource(Source):
    """Provide synaptic sites read from a CREMI-style HDF5 annotation group as graphs.

    The group named by a dataset holds `ids` (n,), `locations` (n, dims; world units, before
    the offset below), `presynaptic_site/partners` (m, 2: pre id, post id per synapse) and,
    optionally, `comments/target_ids` (ids marked unsure). A graph key whose name contains
    POST gets the postsynaptic sites, one containing PRE the presynaptic ones. Each node has
    the annotation's id and the attributes `location_id` (the id), `synapse_id` (the row of
    its first synapse), `partner_ids` (the ids of all its partners) and `props`
    (`{"unsure": True}` for ids in `comments/target_ids`, else `{}`). Locations are shifted
    by the offset of the key's ROI (as 1.x: CREMI locations are relative to the volume).
    Annotations that are in no synapse are left out. The file is read once per process, on
    first use; nothing stays open.

    Args:
        filename: the HDF5 file.
        datasets: dict from GraphKey to the name of the annotation group in the file (e.g.
            "annotations").
        rois: dict from each GraphKey of `datasets` to the Roi it is provided on.

    Example::

        source = Hdf5PointsSource(
            "sample_A.hdf",
            datasets={presyn: "annotations", postsyn: "annotations"},
            rois={presyn: roi, postsyn: roi},
        )
    """

    def __init__(
        self, filename: str, datasets: dict[GraphKey, str], rois: dict[GraphKey, Roi]
    ) -> None:
        name = "Hdf5PointsSource"
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError(f"{name}: datasets must be a non-empty dict, got {datasets!r}")
        if not isinstance(rois, dict):
            raise ValueError(f"{name}: rois must be a dict, got {rois!r}")
        for key, ds in datasets.items():
            if not isinstance(key, GraphKey) or not isinstance(ds, str):
                raise ValueError(
                    f"{name}: datasets must map GraphKeys to group names, got {key!r}: {ds!r}"
                )
            if not isinstance(rois.get(key), Roi):
                raise ValueError(f"{name}: rois needs a Roi for {key}, got {rois.get(key)!r}")
            _kind(key)
        self.filename = str(filename)
        self.datasets = dict(datasets)
        self.rois = dict(rois)
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        import h5py

        try:
            with h5py.File(self.filename, "r") as f:
                for key, group in self.datasets.items():
                    missing = [m for m in _MEMBERS if f"{group}/{m}" not in f]
                    if missing:
                        raise PipelineSetupError(
                            f"{self.name}: {self.filename} has no {group}/{missing[0]} "
                            f"(needed for {key})"
                        )
        except OSError as e:
            raise PipelineSetupError(f"{self.name}: can not open {self.filename}: {e}") from e
        spec = ProviderSpec()
        for key in self.datasets:
            spec[key] = GraphSpec(roi=self.rois[key], directed=False)
        return spec

    def _read(self, group: str) -> dict[str, np.ndarray]:
        """The annotation arrays of `group`, read once per process."""
        if group not in self._cache:
            import h5py

            with h5py.File(self.filename, "r") as f:
                g = f[group]
                data = {
                    "ids": np.asarray(g["ids"][:], dtype=np.int64),
                    "locations": np.asarray(g["locations"][:], dtype=np.float64),
                    "partners": np.asarray(g["presynaptic_site/partners"][:], dtype=np.int64),
                    "unsure": (
                        np.asarray(g["comments/target_ids"][:], dtype=np.int64)
                        if "comments/target_ids" in g
                        else np.zeros(0, dtype=np.int64)
                    ),
                }
            data["partners"] = data["partners"].reshape(-1, 2)
            self._cache[group] = data
        return self._cache[group]

    def _nodes(self, key: GraphKey, roi: Roi) -> list[GraphNode]:
        data = self._read(self.datasets[key])
        column, other = (0, 1) if _kind(key) == "pre" else (1, 0)
        partners = data["partners"]
        offset = np.array([0 if o is None else o for o in self.rois[key].offset], dtype=float)
        unsure = set(data["unsure"].tolist())
        nodes = []
        for node_id, location in zip(data["ids"].tolist(), data["locations"]):
            rows = np.flatnonzero(partners[:, column] == node_id)
            if len(rows) == 0:
                continue
            location = location + offset
            if not roi.contains(tuple(location)):
                continue
            attrs = {
                "location_id": node_id,
                "synapse_id": int(rows[0]),
                "partner_ids": [int(p) for p in partners[rows, other]],
                "props": {"unsure": True} if node_id in unsure else {},
            }
            nodes.append(GraphNode(node_id, location, attrs=attrs))
        return nodes

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        batch = Batch()
        for key, spec in request.items():
            if key not in self.datasets:
                continue
            roi = spec.roi if spec.roi is not None else self.rois[key]
            graph_spec = self.spec[key].replace(roi=roi)
            batch[key] = Graph(self._nodes(key, roi), [], graph_spec)
        return batch


__all__ = ["Hdf5PointsSource"]
