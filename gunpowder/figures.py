"""Figures that show themselves: a matplotlib `Figure` that renders as PNG in Jupyter.

The library draws with matplotlib's object API (no pyplot state, no open windows, safe in
workers), but a bare `Figure` is shown as text (`<Figure size ...>`) in a fresh kernel where
pyplot was never imported. `NotebookFigure` adds the `_repr_png_` IPython looks for.
"""

from __future__ import annotations

import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["NotebookFigure", "new_figure"]


class NotebookFigure(Figure):
    """A `Figure` with an Agg canvas and a PNG representation for notebooks."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def new_figure(**kwargs: Any) -> NotebookFigure:
    """A `NotebookFigure` (arguments as for `Figure`), ready for `savefig`.

    >>> fig = new_figure(figsize=(2, 2))
    >>> fig._repr_png_()[:4] == b"\\x89PNG"
    True
    """
    fig = NotebookFigure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
