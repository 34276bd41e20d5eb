"""Per-node timings collected while a batch is made (`batch.profiling_stats`)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable


class ProfilingStats:
    """Durations in seconds, keyed by (node name, phase) where phase is "prepare" or "process"."""

    def __init__(self) -> None:
        self.timings: dict[tuple[str, str], list[float]] = defaultdict(list)

    def add(self, node_name: str, phase: str, seconds: float) -> None:
        self.timings[(node_name, phase)].append(seconds)

    def merge_with(self, other: ProfilingStats) -> None:
        if other is self:
            return
        for key, values in other.timings.items():
            self.timings[key].extend(values)

    def copy(self) -> ProfilingStats:
        new = ProfilingStats()
        new.merge_with(self)
        return new

    def get_timing_summaries(self) -> dict[tuple[str, str], dict[str, float]]:
        """min/median/max/total/count of each (node, phase)."""
        return {
            key: {
                "min": min(v),
                "median": statistics.median(v),
                "max": max(v),
                "total": sum(v),
                "count": len(v),
            }
            for key, v in self.timings.items()
            if v
        }

    def node_names(self) -> Iterable[str]:
        return sorted({name for name, _ in self.timings})

    def __reduce__(self):
        return (_rebuild_stats, (dict(self.timings),))

    def __repr__(self) -> str:
        rows = [
            f"{name:>28} {phase:>8} median {s['median'] * 1e3:8.2f} ms  (n={s['count']})"
            for (name, phase), s in sorted(self.get_timing_summaries().items())
        ]
        return "ProfilingStats(\n" + "\n".join(rows) + "\n)"


def _rebuild_stats(timings: dict) -> ProfilingStats:
    stats = ProfilingStats()
    for k, v in timings.items():
        stats.timings[k] = list(v)
    return stats
