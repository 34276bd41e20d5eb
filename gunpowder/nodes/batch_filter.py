"""`BatchFilter`: the base of users' own gunpowder 1.x filters."""

from __future__ import annotations

from typing import Any

from ..batch import Batch
from ..errors import BatchFilterError, PipelineSetupError
from ..spec import BatchRequest
from ._legacy import adapt
from .batch_provider import BatchProvider


class BatchFilter(BatchProvider):
    """Base of 1.x-style filters: `setup()` with `provides`/`updates`, `prepare(request)`
    returning a `BatchRequest` of dependencies (or None), `process(batch, request)` returning
    a `Batch` of outputs (or None after editing `batch` in place).

    For users' own gunpowder 1.x filters, run through an adapter with 1.x semantics:
    `self.spec` starts as the upstream spec; keys declared with `provides` are removed from
    the upstream request; dependencies returned by `prepare` are requested as well (the
    union of ROIs where a key is also requested downstream); the returned outputs are merged
    into the batch. `enable_autoskip()` skips the filter for requests without its keys (other
    than placeholders), and `skip_node(request)` returning True skips it for that request.
    As in 1.x, the global `random`/`np.random` are seeded with the request's `random_seed`
    before `skip_node` and `prepare`. The request the filter sees holds no dtype the engine
    filled in (1.x requests had none). The base class takes no constructor arguments; a
    subclass defines its own.

    Example::

        class Threshold(gp.BatchFilter):
            def __init__(self, key, target, value):
                self.key, self.target, self.value = key, target, value

            def setup(self):
                spec = self.spec[self.key].copy()
                spec.dtype, spec.interpolatable = np.uint8, False
                self.provides(self.target, spec)

            def prepare(self, request):
                deps = gp.BatchRequest()
                deps[self.key] = request[self.target].copy()
                return deps

            def process(self, batch, request):
                array = batch[self.key]
                spec = array.spec.copy()
                spec.dtype, spec.interpolatable = np.uint8, False
                outputs = gp.Batch()
                outputs[self.target] = gp.Array((array.data > self.value).astype(np.uint8), spec)
                return outputs

        pipeline += Threshold(raw, gp.ArrayKey("FOREGROUND"), 0.5)
    """

    def updates(self, key: Any, spec: Any) -> None:
        """Declare that this filter changes `key` (which must be provided upstream)."""
        if key not in self.spec:
            raise PipelineSetupError(
                f"{type(self).__name__}: updates {key}, but upstream does not provide it "
                f"(has {sorted(self.spec)})"
            )
        self.spec[key] = spec
        self.__dict__.setdefault("_updated_keys", set()).add(key)

    def enable_autoskip(self, skip: bool = True) -> None:
        """Skip this filter for requests that contain none of its provided/updated keys."""
        self.__dict__["_autoskip"] = skip

    def enable_placeholders(self) -> None:
        """Accepted for 1.x compatibility: placeholders are always passed on here."""
        self.__dict__["_placeholders"] = True

    def skip_node(self, request: BatchRequest) -> bool:
        """Return True to pass `request` through this filter untouched (1.x).

        Called before `prepare`, after `random`/`np.random` were seeded with the request's
        seed, so a random skip (`random.random() > p`) is the same for the same seed.
        """
        return False

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        return None

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        return None

    def _to_node(self) -> Any:
        """The functional node that runs this filter (made once per instance)."""
        return adapt(self, is_filter=True)


__all__ = ["BatchFilter", "BatchFilterError"]
