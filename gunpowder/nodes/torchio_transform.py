"""`TorchioTransform`: a TorchIO transform as a node, seeded from the request."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array
from ..errors import PipelineRequestError
from ._external_transform import ExternalTransform, torch_seeded


class TorchioTransform(ExternalTransform):
    """Apply a TorchIO transform (or a ``tio.Compose``/``tio.OneOf``) to arrays.

    The arrays go in as one ``tio.Subject``: interpolatable arrays as ``ScalarImage`` (so
    intensity transforms change them), the others as ``LabelMap`` (moved by spatial
    transforms with nearest-neighbour interpolation, never changed in value), each with an
    affine whose diagonal is the voxel size, so physical parameters (mm in TorchIO, world
    units here) mean the same in both. Tensor axis i after the channel is spatial axis i of
    the array (z, y, x); 2D arrays get a trailing axis of one voxel for the call.

    TorchIO draws its random parameters from torch's global generator: this node draws a seed
    from its Generator in `prepare` and runs a deep copy of `transform` inside
    `torch.random.fork_rng` seeded with it (under a lock, so threads do not interleave), so
    the same request seed gives the same batch and torch's generator is left as it was.
    Results come back as numpy arrays in the key's dtype with the channel layout they came
    in. The spatial shape must stay the same: crops, pads and resamplings are an error naming
    the node and key, unless `voxel_sizes` declares the voxel size of the same ROI.

    Args:
        transform: the TorchIO transform.
        keys: one ArrayKey, a list of ArrayKeys (images named by the key's name, e.g.
            ``"RAW"``), or a mapping {name: ArrayKey} (the names ``include=``/``exclude=`` of
            the transform refer to).
        voxel_sizes: {ArrayKey: voxel size} for transforms that resample the same ROI
            (``tio.Resample``). Default None: every shape must stay as it is.
        dtypes: {ArrayKey: dtype} for keys whose dtype the transform changes on purpose.
            Default None: each key keeps its dtype.

    Example::

        import torchio as tio

        pipeline += gp.TorchioTransform(
            tio.Compose([tio.RandomFlip(axes=(1, 2)), tio.RandomNoise(std=0.05)]),
            keys=[raw, labels],
        )
    """

    library = "torchio"

    def run(
        self,
        transform: Any,
        arrays: dict[str, np.ndarray],
        seed: int,
        sources: dict[str, Array],
    ) -> dict[str, Any]:
        import torch
        import torchio as tio

        images = {}
        flat = {}
        for name, data in arrays.items():
            spec = sources[name].spec
            dims = spec.roi.dims
            vs = [float(v) for v in spec.voxel_size]
            if dims == 2:
                data = data[..., np.newaxis]
                vs.append(1.0)
            elif dims != 3:
                raise PipelineRequestError(
                    f"{self.name}: {self.names[name]} has {dims} spatial axes; TorchIO takes "
                    "2D or 3D arrays"
                )
            flat[name] = dims == 2
            kind = tio.ScalarImage if spec.interpolatable else tio.LabelMap
            images[name] = kind(tensor=torch.from_numpy(data), affine=np.diag(vs + [1.0]))
        with torch_seeded(seed):
            out = transform(tio.Subject(**images))
        results = {}
        for name in arrays:
            if name not in out:
                continue
            data = out[name].data
            results[name] = data[..., 0] if flat[name] else data
        return results
