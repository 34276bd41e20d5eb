"""The component labels two-phase MALIS training needs (negative and positive pass)."""

from __future__ import annotations

import numpy as np


def malis_components(labels: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """Stack [negative pass, positive pass] of component labels, shape (2, *labels.shape).

    The positive pass is `labels`. The negative pass is `labels` with every voxel where
    `ignore` is 0 set to one fresh id, max(labels) + 1, so the ignored region forms one object
    of its own; without `ignore` it equals `labels`. Same dtype as `labels`.
    """
    labels = np.asarray(labels)
    negative = labels.copy()
    if ignore is not None:
        ignore = np.asarray(ignore)
        if ignore.shape != labels.shape:
            raise ValueError(
                f"ignore mask of shape {ignore.shape} does not match labels of shape {labels.shape}"
            )
        fresh = (labels.max() if labels.size else 0) + 1
        negative[ignore == 0] = fresh
    return np.stack([negative, labels])
