"""The errors a user sees: each names the node, the key and what was expected."""


class GunpowderError(Exception):
    """Base of the errors raised by gunpowder."""


class PipelineSetupError(GunpowderError):
    """A pipeline can not be set up: a node needs something its upstream does not provide."""


class PipelineRequestError(GunpowderError):
    """A request can not be served: outside what is provided, off the voxel grid, mismatched."""


class BatchFilterError(GunpowderError):
    """A (1.x-style) filter broke its contract, e.g. `prepare` returned the wrong type."""


class NodeError(GunpowderError):
    """An exception raised inside a node, re-raised with the node's name and the request."""

    def __init__(self, message: str, node_name: str = "?") -> None:
        super().__init__(message)
        self.node_name = node_name
