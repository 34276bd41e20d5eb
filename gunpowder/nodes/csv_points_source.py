from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..graph import Graph
from ..spec import GraphKey, GraphSpec
from .graph_source import GraphSource, _IndexedGraph

_SPLIT = re.compile(r"[,\s;]+")


def _read_csv(filename: str) -> np.ndarray:
    """Rows of numbers from a CSV/whitespace file; `#` comments and a header line skipped."""
    fast = _read_csv_fast(filename)
    if fast is not None:
        return fast
    with open(filename) as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line]
    if not numbered:
        return np.zeros((0, 0))
    first = [t for t in _SPLIT.split(numbered[0][1]) if t]
    try:
        [float(t) for t in first]
    except ValueError:
        numbered = numbered[1:]  # a header line
    if not numbered:
        return np.zeros((0, 0))
    tokens = [[t for t in _SPLIT.split(line) if t] for _, line in numbered]
    widths = np.array([len(t) for t in tokens])
    if np.any(widths != widths[0]):
        raise ValueError(
            f"{filename}: rows have different numbers of columns {sorted(set(widths.tolist()))}"
        )
    try:
        return np.array(tokens, dtype=np.float64).reshape(len(tokens), int(widths[0]))
    except ValueError:
        for (line_no, line), row in zip(numbered, tokens):
            try:
                [float(t) for t in row]
            except ValueError:
                raise ValueError(
                    f"{filename}:{line_no}: can not read {line!r} as numbers"
                ) from None
        raise


def _read_csv_fast(filename: str) -> np.ndarray | None:
    """`numpy.loadtxt` for the common layouts (comma or whitespace separated, optional
    header); None where it does not apply (then the careful reader explains the problem)."""
    header = 0
    delimiter = None
    with open(filename) as f:
        for line in f:
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            delimiter = "," if "," in text else None
            try:
                [float(t) for t in _SPLIT.split(text) if t]
            except ValueError:
                header = 1
            break
    try:
        with open(filename) as f:
            lines = (line for line in f if line.split("#", 1)[0].strip())
            for _ in range(header):
                next(lines, None)
            table = np.loadtxt(lines, delimiter=delimiter, comments="#", ndmin=2)
    except ValueError:
        return None
    return table.astype(np.float64) if table.size else None


class CsvPointsSource(GraphSource):
    """Points from a CSV file, one per line (e.g. `z, y, x[, id]`), under the GraphKey `points`.

    Comma- or whitespace-separated numbers; `#` comments and a header line are skipped. The
    points (no edges) are indexed in a KD-tree at setup, so each request reads only the
    points in its ROI.

    Args:
        filename: path of the CSV file.
        points: the GraphKey to provide.
        points_spec: optional GraphSpec overriding the provided spec (default: the points'
            bounding box as ROI, undirected).
        scale: multiplies the coordinates, e.g. the voxel size to turn voxel indices into
            world units (a number or one per axis; default None: the file holds world units).
        ndims: which columns (after removing `id_col`) form the location: None all, n > 0 the
            first n, n < 0 all but the last |n| (default None).
        id_col: the column with unique point ids (default None: the row index).

    Example::

        pipeline = (
            (raw_source, gp.CsvPointsSource("synapses.csv", synapses, scale=(40, 4, 4)))
            + gp.MergeProvider()
        )
    """

    def __init__(
        self,
        filename: str | Path,
        points: GraphKey,
        points_spec: GraphSpec | None = None,
        scale: Any = None,
        ndims: int | None = None,
        id_col: int | None = None,
    ) -> None:
        super().__init__(points, None, points_spec)
        self.filename = str(filename)
        self.points = points
        self.points_spec = points_spec
        self.scale = scale
        self.ndims = ndims
        self.id_col = id_col

    def _load(self) -> Graph:
        try:
            table = _read_csv(self.filename)
        except (OSError, ValueError) as e:
            raise PipelineSetupError(f"{self.name}: can not read {self.filename}: {e}") from e
        columns = list(range(table.shape[1]))
        ids = None
        if self.id_col is not None:
            if not -len(columns) <= self.id_col < len(columns):
                raise PipelineSetupError(
                    f"{self.name}: id_col={self.id_col} but {self.filename} has "
                    f"{len(columns)} columns"
                )
            id_col = columns[self.id_col]
            ids = table[:, id_col].astype(np.int64)
            columns.remove(id_col)
            if len(np.unique(ids)) != len(ids):
                raise PipelineSetupError(f"{self.name}: the ids in column {id_col} are not unique")
        if self.ndims is not None:
            columns = columns[: self.ndims or None]
        locations = table[:, columns]
        if self.scale is not None:
            locations = locations * np.asarray(self.scale, dtype=np.float64)
        spec = GraphSpec(directed=False)
        if len(locations) and (self.points_spec is None or self.points_spec.roi is None):
            begin = np.floor(locations.min(axis=0))
            end = np.floor(locations.max(axis=0)) + 1
            spec.roi = Roi(Coordinate(begin), Coordinate(end - begin))
        if ids is None:
            ids = np.arange(len(locations), dtype=np.int64)
        self._arrays = (ids, locations)
        return Graph(spec=spec)  # the nodes stay in arrays (no Node object per point)

    def _index(self, graph: Graph) -> _IndexedGraph:
        ids, locations = self._arrays
        return _IndexedGraph(ids, locations)
