from __future__ import annotations

from typing import Any

from ..batch import Array, Batch
from ..node import Node
from ..spec import ArrayKey, ProviderSpec
from ..transforms import labels as kernels
from ._args import bad_argument
from ._common import spatial_array_spec
from ._labels import _check_label_dtype, _check_label_values, _one_channel


class RenumberConnectedComponents(Node):
    """Give every face-connected region of one non-zero id in `labels` its own id (1..N).

    After a crop or an augmentation one object can fall apart into pieces that no longer
    touch; this makes them separate objects. Ids are assigned in raster order per batch; 0
    stays 0. `labels` keeps its key and spec.

    Args:
        labels: the ArrayKey of the label ids to renumber in place (integers; shape
            (*spatial) or (1, *spatial)).

    Example::

        pipeline += gp.RenumberConnectedComponents(gt_labels)
    """

    def __init__(self, labels: ArrayKey) -> None:
        if not isinstance(labels, ArrayKey):
            raise bad_argument("RenumberConnectedComponents", "labels", "an ArrayKey", labels)
        self.labels = labels

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        spatial_array_spec(self, upstream_spec, self.labels)
        _check_label_dtype(self, upstream_spec, self.labels, "label ids")
        return upstream_spec

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.labels not in batch:
            return batch
        array = batch[self.labels]
        labels = _one_channel(self, self.labels, array, "label ids")
        _check_label_values(self, self.labels, labels, "label ids")
        try:
            data = kernels.relabel_connected_components(labels).reshape(array.data.shape)
        except ValueError as e:
            raise ValueError(f"{self.name} on {self.labels}: {e}") from None
        batch[self.labels] = Array(data, array.spec, dict(array.attrs))
        return batch
