"""Shared test settings: hypothesis profile sized for CI on 2 cores.

`GP_HYPOTHESIS_DERANDOMIZE=1` (set by .ci/run) draws the same examples every run, so CI's
verdict does not depend on the draw; local runs draw new examples each time and so keep
finding new edge cases (record any in a test with `@example`)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("GP_MAX_EXAMPLES", "40")),
    deadline=None,
    derandomize=os.environ.get("GP_HYPOTHESIS_DERANDOMIZE") == "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci")
