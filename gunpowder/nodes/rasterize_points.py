"""1.x module path of `RasterizeGraph` (once `RasterizePoints`) and `RasterizationSettings`."""

from .rasterize_graph import RasterizationSettings, RasterizeGraph, RasterizePoints

__all__ = ["RasterizeGraph", "RasterizationSettings", "RasterizePoints"]
