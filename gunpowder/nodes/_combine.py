"""Combining upstreams and requests: `MergeProvider` (keys from several upstreams),
`RandomProvider` (one upstream per request, at random) and `Stack` (several samples of one
upstream along a new first axis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..batch import Batch
from ..errors import PipelineSetupError


def _merge(batches: Sequence[Batch | None]) -> Batch:
    """One batch with the items of all given batches (profiling stats merged)."""
    present = [b for b in batches if b is not None]
    if not present:
        return Batch()
    merged = present[0]
    for other in present[1:]:
        merged = merged.merge(other)
    return merged


def _common(name: str, key: Any, a: Any, b: Any, index: int) -> Any:
    """The spec of `key` that both upstreams can serve (ROI intersection); error on mismatch."""
    for field in ("voxel_size", "dtype", "nonspatial"):
        x, y = getattr(a, field, None), getattr(b, field, None)
        if x is not None and y is not None and x != y:
            raise PipelineSetupError(
                f"{name}: {key} has {field} {x} in upstream 0 but {y} in upstream {index}"
            )
    if a.roi is None or b.roi is None:
        return a if b.roi is None else b
    roi = a.roi.intersect(b.roi)
    if roi.empty:
        raise PipelineSetupError(
            f"{name}: the ROIs of {key} do not overlap across upstreams ({a.roi} and "
            f"{b.roi} in upstream {index})"
        )
    return a.replace(roi=roi)
