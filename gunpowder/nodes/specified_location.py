from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate
from ..node import Node
from ..spec import BatchRequest, ProviderSpec
from ._location import (
    LocationChoice,
    fits,
    is_spatial,
    lcm_voxel_size,
    logger,
    provided_everywhere,
    shift_batch,
    shift_request,
    total_roi,
)


def _keys(request: ProviderSpec) -> str:
    return ", ".join(f"{k} {s.roi}" for k, s in request.items())


class SpecifiedLocation(Node):
    """Centre each request on one of `locations` (world units), in turn or at random.

    The centre of the request's bounding box is moved onto the location (snapped to the
    voxel grid), optionally jittered uniformly by up to `jitter` per axis. A location that
    would take the request outside the upstream data is skipped with a warning. In turn means
    a counter on the node: the one piece of state kept across requests (as in 1.x), so with
    `choose_randomly=False` the batch depends on how many requests came before; with
    `choose_randomly=True` it depends on the request seed alone. `extra_data[i]` is attached to
    every array of a batch taken at location `i` as `attrs["specified_location_extra_data"]`.
    Downstream, every spatial key is offered with an unbounded ROI.

    Args:
        locations: the points (world units, one coordinate per spatial axis) to centre
            requests on; at least one.
        choose_randomly: draw a location uniformly (with replacement) from the request's
            Generator instead of taking them in turn. Default False: in turn, starting over
            after the last.
        extra_data: optional list with one entry per location, attached to the arrays of a
            batch taken there (see above). Default None: nothing attached.
        jitter: the largest random offset (world units, one value per spatial axis) added
            to a location before centring, drawn uniformly from [-jitter, jitter]. Default
            None: no jitter.

    Example::

        raw = gp.ArrayKey("RAW")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"})
        pipeline += gp.SpecifiedLocation([(1000, 2000, 2000), (1200, 800, 3000)],
                                         choose_randomly=True, jitter=(0, 40, 40))
        request = gp.BatchRequest()
        request[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)))
        with gp.build(pipeline):
            batch = pipeline.request_batch(request)  # centred on (near) a location
    """

    def __init__(
        self,
        locations: Sequence[Any],
        choose_randomly: bool = False,
        extra_data: Sequence[Any] | None = None,
        jitter: Any = None,
    ) -> None:
        self.locations = [Coordinate(loc) for loc in locations]
        if not self.locations:
            raise ValueError("SpecifiedLocation: needs at least one location")
        if extra_data is not None and len(extra_data) != len(self.locations):
            raise ValueError(
                f"SpecifiedLocation: extra_data has {len(extra_data)} entries for "
                f"{len(self.locations)} locations"
            )
        self.choose_randomly = choose_randomly
        self.extra_data = extra_data
        self.jitter = None if jitter is None else Coordinate(jitter)
        self._counter = 0
        self._counter_lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_counter_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._counter_lock = threading.Lock()

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        return provided_everywhere(upstream_spec)

    def _next_index(self, rng: np.random.Generator) -> int:
        if self.choose_randomly:
            return int(rng.integers(len(self.locations)))
        with self._counter_lock:
            index = self._counter % len(self.locations)
            self._counter += 1
        return index

    def prepare(
        self, request: BatchRequest, rng: np.random.Generator
    ) -> tuple[BatchRequest, LocationChoice]:
        """The request centred on the next location that fits upstream, and that choice."""
        total = total_roi(request)
        if total is None:
            return request, LocationChoice(None, None)
        keys = [k for k, s in request.items() if is_spatial(s)]
        step = lcm_voxel_size(self.upstream_spec, keys, total.dims)
        skipped = []
        # in turn without jitter, one round decides; random choices and jitter get more rounds
        rounds = 1 if not (self.choose_randomly or self.jitter is not None) else 10
        for _ in range(rounds * len(self.locations)):
            index = self._next_index(rng)
            location = self.locations[index]
            if location.dims != total.dims:
                raise PipelineRequestError(
                    f"{self.name}: location {location} has {location.dims} dimensions, the "
                    f"request {total.dims}"
                )
            if self.jitter is not None:
                location = location + Coordinate(
                    rng.integers(-np.array(self.jitter), np.array(self.jitter) + 1)
                )
            # the exact centre (begin + shape / 2) moved to the location, rounded half up on
            # the grid, so the location always lies inside the shifted request
            twice_off = 2 * np.array(location) - 2 * np.array(total.begin) - np.array(total.shape)
            steps = np.floor(twice_off / (2 * np.array(step)) + 0.5).astype(np.int64)
            shift = Coordinate(steps) * step
            shifted = shift_request(request, shift)
            if fits(shifted, self.upstream_spec):
                return shifted, LocationChoice(shift, index)
            skipped.append(tuple(location))
            logger.warning(
                "%s: location %s would take the request %s outside the upstream data; skipped",
                self.name,
                location,
                total,
            )
        raise PipelineRequestError(
            f"{self.name}: none of the locations tried ({sorted(set(skipped))}) can hold the "
            f"request "
            f"{_keys(request)} inside the upstream ROIs"
        )

    def process(self, batch: Batch, ctx: LocationChoice) -> Batch:
        if ctx.shift is None:
            return batch
        batch = shift_batch(batch, -ctx.shift, self.name)
        if self.extra_data is not None:
            # new attribute dicts: upstream's arrays (and their attrs) are not ours to change
            extra = self.extra_data[ctx.index]
            for key, array in list(batch.arrays.items()):
                attrs = {**array.attrs, "specified_location_extra_data": extra}
                batch[key] = Array(array.data, array.spec, attrs)
        return batch
