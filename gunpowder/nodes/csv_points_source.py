"""`CsvPointsSource`: points from a CSV file (1.x node), served from a KD-tree index."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..graph import Graph
from ..spec import GraphKey, GraphSpec
from .graph_source import GraphSource, _IndexedGraph

logger = logging.getLogger(__name__)

_SPLIT = re.compile(r"[,\s;]+")


def _read_csv(filename: str, delimiter: str | None = None) -> np.ndarray:
    """Rows of numbers from a CSV/whitespace file; `#` comments and a header line skipped.

    `delimiter` None: commas, semicolons and/or whitespace; else exactly that character
    (fields stripped of surrounding whitespace).
    """
    split = _SPLIT.split if delimiter is None else _splitter(delimiter)
    fast = _read_csv_fast(filename) if delimiter is None else None
    if fast is not None:
        return fast
    with open(filename) as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line]
    if not numbered:
        return np.zeros((0, 0))
    first = [t for t in split(numbered[0][1]) if t]
    try:
        [float(t) for t in first]
    except ValueError:
        numbered = numbered[1:]  # a header line
    if not numbered:
        return np.zeros((0, 0))
    tokens = [[t for t in split(line) if t] for _, line in numbered]
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


def _splitter(delimiter: str):
    """Split a line at `delimiter`, fields stripped (whitespace delimiters: runs of them)."""
    if delimiter.strip() == "":
        return lambda line: line.split()
    return lambda line: [t.strip() for t in line.split(delimiter)]


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

    Comma- or whitespace-separated numbers (or exactly `delimiter`); `#` comments and a header
    line are skipped. The location columns are `spatial_cols` (1.5) or, by default, every
    column but `id_col` (limited by `ndims`). The points (no edges) are indexed in a KD-tree
    at setup, so each request reads only the points in its ROI. Locations are stored as the
    spec's dtype (float32 by default, as 1.x).

    Args:
        filename: path of the CSV file.
        points: the GraphKey to provide.
        points_spec: optional GraphSpec overriding the provided spec (default: the points'
            bounding box as ROI, undirected). 1.5's third positional argument
            `spatial_cols` (a list of ints) is accepted here too.
        scale: multiplies the coordinates, e.g. the voxel size to turn voxel indices into
            world units (a number or one per axis; default None: the file holds world units).
        ndims: which columns (after removing `id_col`) form the location: None all, n > 0 the
            first n, n < 0 all but the last |n| (default None). Ignored with `spatial_cols`.
        id_col: the column with unique point ids (default None: the row index).
        spatial_cols: the columns holding the location, in the order of the axes (1.5;
            default None: see `ndims`).
        delimiter: the column separator (1.5; default None: commas, semicolons and/or
            whitespace). 1.5's default "," reads the same files.

    Example::

        pipeline = (
            (raw_source, gp.CsvPointsSource("synapses.csv", synapses, scale=(40, 4, 4)))
            + gp.MergeProvider()
        )
        # 1.5: columns x, y, z, id with the axes taken as z, y, x
        gp.CsvPointsSource("points.csv", synapses, spatial_cols=[2, 1, 0], id_col=3)
    """

    def __init__(
        self,
        filename: str | Path,
        points: GraphKey,
        points_spec: GraphSpec | None = None,
        scale: Any = None,
        ndims: int | None = None,
        id_col: int | None = None,
        spatial_cols: list[int] | None = None,
        delimiter: str | None = None,
    ) -> None:
        if points_spec is not None and not isinstance(points_spec, GraphSpec):
            if spatial_cols is not None or not isinstance(points_spec, (list, tuple)):
                raise TypeError(
                    f"CsvPointsSource({filename}): points_spec must be a GraphSpec, got "
                    f"{points_spec!r}"
                )
            spatial_cols, points_spec = list(points_spec), None  # 1.5's positional order
        super().__init__(points, None, points_spec)
        self.filename = str(filename)
        self.points = points
        self.points_spec = points_spec
        self.scale = scale
        self.ndims = ndims
        self.id_col = id_col
        self.spatial_cols = None if spatial_cols is None else [int(c) for c in spatial_cols]
        self.delimiter = delimiter

    def _columns(self, n: int) -> tuple[list[int], int | None]:
        """(location columns, id column) of a table with `n` columns."""
        columns = list(range(n))
        id_col = None
        if self.id_col is not None:
            if not -n <= self.id_col < n:
                raise PipelineSetupError(
                    f"{self.name}: id_col={self.id_col} but {self.filename} has {n} columns"
                )
            id_col = columns[self.id_col]
        if self.spatial_cols is not None:
            bad = [c for c in self.spatial_cols if not -n <= c < n]
            if bad or not self.spatial_cols:
                raise PipelineSetupError(
                    f"{self.name}: spatial_cols={self.spatial_cols} but {self.filename} has "
                    f"{n} columns"
                )
            return [columns[c] for c in self.spatial_cols], id_col
        if id_col is not None:
            columns.remove(id_col)
        if self.ndims is not None:
            columns = columns[: self.ndims or None]
        return columns, id_col

    def _load(self) -> Graph:
        try:
            table = _read_csv(self.filename, self.delimiter)
        except (OSError, ValueError) as e:
            raise PipelineSetupError(f"{self.name}: can not read {self.filename}: {e}") from e
        columns, id_col = self._columns(table.shape[1])
        ids = None
        if id_col is not None:
            ids = table[:, id_col].astype(np.int64)
            if len(np.unique(ids)) != len(ids):
                raise PipelineSetupError(f"{self.name}: the ids in column {id_col} are not unique")
        locations = table[:, columns]
        if self.scale is not None:
            locations = locations * np.asarray(self.scale, dtype=np.float64)
        spec = GraphSpec(directed=False)
        if self.points_spec is not None and self.points_spec.dtype is not None:
            spec.dtype = self.points_spec.dtype
        locations = locations.astype(spec.dtype)  # stored as served: index on those values
        if len(locations) and (self.points_spec is None or self.points_spec.roi is None):
            begin = np.floor(locations.min(axis=0).astype(np.float64))
            end = np.floor(locations.max(axis=0).astype(np.float64)) + 1
            spec.roi = Roi(Coordinate(begin), Coordinate(end - begin))
        if ids is None:
            ids = np.arange(len(locations), dtype=np.int64)
        self._arrays = (ids, locations)
        return Graph(spec=spec)  # the nodes stay in arrays (no Node object per point)

    def setup(self, upstream_spec: Any = None) -> Any:
        provided = super().setup(upstream_spec)
        spec = provided[self.key]
        dims = self._arrays[1].shape[1] if len(self._arrays[1]) else None
        if spec.roi is not None and dims is not None and spec.roi.dims < dims:
            # 1.x does not compare dimensions: a 2D points_spec ROI for 3D points worked
            extra = dims - spec.roi.dims
            logger.warning(
                "%s: points_spec ROI %s has %d dimensions, the points in %s %d; the last %d "
                "axes are unbounded",
                self.name,
                spec.roi,
                spec.roi.dims,
                self.filename,
                dims,
                extra,
            )
            spec.roi = Roi(
                tuple(spec.roi.begin) + (None,) * extra, tuple(spec.roi.shape) + (None,) * extra
            )
            self._spec = spec
        elif spec.roi is not None and dims is not None and spec.roi.dims != dims:
            raise PipelineSetupError(
                f"{self.name}: points_spec ROI {spec.roi} has {spec.roi.dims} dimensions, the "
                f"points in {self.filename} {dims}"
            )
        return provided

    def _index(self, graph: Graph) -> _IndexedGraph:
        ids, locations = self._arrays
        return _IndexedGraph(ids, locations)
