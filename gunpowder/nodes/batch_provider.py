"""`BatchProvider`: the base of users' own gunpowder 1.x sources (and of `BatchFilter`)."""

from __future__ import annotations

from typing import Any

from ..batch import Batch
from ..errors import PipelineSetupError
from ..pipeline import Composable
from ..spec import BatchRequest, ProviderSpec
from ._legacy import UpstreamView, adapt


class BatchProvider(Composable):
    """Base of 1.x-style sources: override `setup()` (call `self.provides(key, spec)`) and
    `provide(request) -> Batch`.

    For users' own gunpowder 1.x sources: an adapter turns an instance into a functional
    source when it is put into a pipeline. `provide` returns a Batch with the requested keys
    and ROIs; `self.spec` holds what `setup` declared. The global `random` and `np.random`
    are seeded from the node's Generator before each call, so batches stay reproducible.
    The base class takes no constructor arguments; a subclass defines its own.

    Example::

        class Ones(gp.BatchProvider):
            def __init__(self, key):
                self.key = key

            def setup(self):
                self.provides(self.key, gp.ArraySpec(
                    roi=gp.Roi((0, 0, 0), (100, 100, 100)), voxel_size=(1, 1, 1),
                    dtype=np.float32, interpolatable=True))

            def provide(self, request):
                spec = self.spec[self.key].copy()
                spec.roi = request[self.key].roi
                batch = gp.Batch()
                batch[self.key] = gp.Array(np.ones(spec.roi.shape, np.float32), spec)
                return batch

        raw = gp.ArrayKey("RAW")
        pipeline = Ones(raw)
        pipeline += gp.RandomLocation()
    """

    def setup(self) -> None:
        pass

    def teardown(self) -> None:
        pass

    def provide(self, request: BatchRequest) -> Batch:
        raise NotImplementedError(f"{type(self).__name__} must implement provide(request)")

    @property
    def spec(self) -> ProviderSpec:
        if "_spec" not in self.__dict__:
            self.__dict__["_spec"] = ProviderSpec()
        return self.__dict__["_spec"]

    @spec.setter
    def spec(self, value: ProviderSpec) -> None:
        self.__dict__["_spec"] = value

    def provides(self, key: Any, spec: Any) -> None:
        """Declare that this provider offers `key` with `spec` (call in `setup`)."""
        if key in self.spec:
            raise PipelineSetupError(
                f"{type(self).__name__}: provides {key}, but it is already provided upstream; "
                "use updates() to change it"
            )
        self.spec[key] = spec
        self.__dict__.setdefault("_provided_keys", set()).add(key)

    @property
    def remove_placeholders(self) -> bool:
        return False

    def get_upstream_provider(self) -> UpstreamView:
        ups = self.__dict__.get("_upstream_views", [])
        if len(ups) != 1:
            raise PipelineSetupError(f"{type(self).__name__} has {len(ups)} upstream providers")
        return ups[0]

    def get_upstream_providers(self) -> list[UpstreamView]:
        return list(self.__dict__.get("_upstream_views", []))

    def name(self) -> str:
        """The name in messages and profiling (a method, as in 1.x)."""
        return type(self).__name__

    def _to_node(self) -> Any:
        """The functional node that runs this provider (made once per instance)."""
        return adapt(self, is_filter=False)


class BatchRequestError(Exception):
    """A request a provider can not serve (1.x name; raised with the request and the batch)."""

    def __init__(self, provider: Any, request: Any, batch: Any = None) -> None:
        self.provider = provider
        self.request = request
        self.batch = batch
        super().__init__(f"{provider} can not serve request {request}")
