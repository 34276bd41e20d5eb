"""The errors a user sees: each names the node, the key and what was expected."""


class GunpowderError(Exception):
    """Base of the errors raised by gunpowder."""


class PipelineSetupError(GunpowderError):
    """A pipeline can not be set up: a node needs something its upstream does not provide."""


class PipelineRequestError(GunpowderError):
    """A request can not be served: outside what is provided, off the voxel grid, mismatched."""


class BatchFilterError(GunpowderError):
    """A (1.x-style) filter broke its contract, e.g. `prepare` returned the wrong type."""


class NodeArgumentError(GunpowderError, ValueError, AssertionError):
    """A node was constructed with an invalid argument (the message names node and argument).

    A `ValueError`, what Python code expects for a bad value, and an `AssertionError`, what
    gunpowder 1.x raised from its `assert`s and what 1.x users' tests catch.
    """
