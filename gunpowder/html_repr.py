"""HTML tables for notebooks: one row per key of a batch or a request (Jupyter calls
`_repr_html_`), with ROI, voxel size, shape, dtype and, for arrays, the value range."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["table"]

_COLUMNS = ("key", "ROI (world units)", "voxel size", "shape", "dtype", "values")


def _range(data: Any) -> str:
    if not isinstance(data, np.ndarray) or data.size == 0 or data.dtype.kind not in "biuf":
        return ""
    if data.size > 50_000_000:  # keep a notebook responsive on huge arrays
        return "(large)"
    lo, hi = np.nanmin(data), np.nanmax(data)
    return f"{lo:.4g} … {hi:.4g}" if data.dtype.kind == "f" else f"{lo} … {hi}"


def _row(key: Any, spec: Any, data: Any = None, graph: Any = None) -> list[str]:
    roi = getattr(spec, "roi", None)
    vs = getattr(spec, "voxel_size", None)
    dtype = getattr(spec, "dtype", None)
    if data is not None:
        shape, dtype, values = tuple(data.shape), data.dtype, _range(data)
    elif graph is not None:
        shape, values = f"{len(graph.nodes)} nodes, {len(graph.edges)} edges", ""
    else:
        shape, values = "", ""
    dtype_text = "" if dtype is None else np.dtype(dtype).name
    return [str(key), "" if roi is None else str(roi), "" if vs is None else str(tuple(vs)),
            str(shape), dtype_text, values]  # fmt: skip


def table(title: str, rows: Iterable[list[str]]) -> str:
    """An HTML table with a caption `title` and one row per entry of `rows`.

    >>> "<td>RAW</td>" in table("Batch", [["RAW", "", "", "", "", ""]])
    True
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f"<table><caption style='text-align:left'>{html.escape(title)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def batch_rows(batch: Any) -> list[list[str]]:
    """A row per array and graph of `batch`."""
    rows = []
    for key, value in batch.items():
        if hasattr(value, "data"):
            rows.append(_row(key, value.spec, data=value.data))
        else:
            rows.append(_row(key, getattr(value, "spec", None), graph=value))
    return rows


def spec_rows(specs: Any) -> list[list[str]]:
    """A row per key of a ProviderSpec or BatchRequest."""
    return [_row(key, spec) for key, spec in specs.items()]
