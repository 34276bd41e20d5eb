"""`MonaiTransform`: a MONAI transform as a node, seeded from the request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..batch import Array
from ..errors import PipelineRequestError
from ._external_transform import ExternalTransform, torch_seeded


class MonaiTransform(ExternalTransform):
    """Apply a MONAI transform (array- or dictionary-based, or a `Compose` of them) to arrays.

    MONAI keeps its random state in each transform; this node draws a seed from its Generator
    in `prepare` and runs a deep copy of `transform` seeded with it
    (`set_random_state(seed=...)`, and torch's generator inside `torch.random.fork_rng`), so
    the same request seed gives the same batch in any process, and no state is shared between
    requests. MONAI gets channel-first data: an array without a channel axis gets one for the
    call and loses it after; MetaTensors and tensors come back as numpy arrays in the key's
    dtype (uint16/uint32/uint64 go in widened to a signed type torch computes with). Labels
    that come back as floats must still be whole numbers (use ``mode="nearest"``), else the
    node raises. The spatial shape must stay the same (the ROI is what the request asked
    for): crops, pads and resizes are an error naming the node and key, unless `voxel_sizes`
    declares that the output covers the same ROI at another voxel size.

    Args:
        transform: the MONAI transform. A dictionary transform (``RandGaussianNoised``, a
            ``Compose`` of them) gets a dict {name: array}; with `keys` a single ArrayKey the
            transform is called on that array itself (``RandGaussianNoise``).
        keys: one ArrayKey (array-based transform), a list of ArrayKeys (dictionary-based, each
            named by the key's name, e.g. ``"RAW"``), or a mapping {name: ArrayKey}
            (dictionary-based, the names the transform's own ``keys`` use).
        voxel_sizes: {ArrayKey: voxel size} for transforms that resample (``Spacingd``,
            ``Zoomd`` with ``keep_size=False``): the output keeps the ROI at this voxel size.
            Default None: every shape must stay as it is.
        dtypes: {ArrayKey: dtype} for keys whose dtype the transform changes on purpose
            (e.g. intensities of an integer array). Default None: each key keeps its dtype.

    Example::

        from monai import transforms as mt

        pipeline += gp.Normalize(raw)
        pipeline += gp.MonaiTransform(
            mt.Compose([
                mt.RandGaussianNoised(keys=["image"], prob=0.5, std=0.05),
                mt.RandRotate90d(keys=["image", "label"], prob=0.5, spatial_axes=(1, 2)),
            ]),
            keys={"image": raw, "label": labels},
        )
    """

    library = "monai"

    def run(
        self,
        transform: Any,
        arrays: dict[str, np.ndarray],
        seed: int,
        sources: dict[str, Array],
    ) -> dict[str, Any]:
        from monai.transforms import Randomizable

        if isinstance(transform, Randomizable):
            transform.set_random_state(seed=seed)
        with torch_seeded(seed):
            if self.single:
                ((name, data),) = arrays.items()
                return {name: transform(data)}
            out = transform(dict(arrays))
        if not isinstance(out, Mapping):
            raise PipelineRequestError(
                f"{self.name}: the transform returned {type(out).__name__}, expected a dict "
                "{name: array} (transforms that return several samples, such as "
                "RandCropByPosNegLabeld with num_samples, are not supported)"
            )
        return dict(out)
