"""Per-node timings collected while a batch is made (`batch.profiling_stats`), as text or a chart.

The engine records, for every node, the seconds spent in each phase ("provide" for sources,
"prepare" and "process" for filters, "serve" for nodes that drive their upstream). The stats
travel with the batch, also from worker processes, and merge where batches merge.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

PHASES = ("provide", "prepare", "process", "serve")


class TimingSummary(Mapping):
    """min/median/max/mean/total/count of some durations (seconds).

    Readable as a mapping (`s["median"]`) and, as in gunpowder 1.x, through methods
    (`s.median()`, `s.counts()`).
    """

    def __init__(self, times: Iterable[float]) -> None:
        self._times = tuple(float(t) for t in times)
        if not self._times:
            raise ValueError("a TimingSummary needs at least one duration")
        self._values = {
            "min": min(self._times),
            "median": statistics.median(self._times),
            "max": max(self._times),
            "mean": statistics.fmean(self._times),
            "total": sum(self._times),
            "count": len(self._times),
        }

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def times(self) -> tuple[float, ...]:
        return self._times

    def counts(self) -> int:
        return len(self._times)

    def min(self) -> float:
        return self._values["min"]

    def max(self) -> float:
        return self._values["max"]

    def mean(self) -> float:
        return self._values["mean"]

    def median(self) -> float:
        return self._values["median"]

    def total(self) -> float:
        return self._values["total"]

    def __repr__(self) -> str:
        return (
            f"TimingSummary(n={self.counts()}, min={self.min():.4g}s, "
            f"median={self.median():.4g}s, max={self.max():.4g}s)"
        )


class ProfilingStats:
    """Durations in seconds, keyed by (node name, phase), and the wall-clock span they cover.

    `span` is (first start, last stop) on `time.perf_counter`'s clock (system-wide monotonic,
    so also comparable for timings recorded in worker processes of the same machine).
    """

    def __init__(self) -> None:
        self.timings: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.span: tuple[float, float] | None = None

    def add(self, node_name: str, phase: str, seconds: float, start: float | None = None) -> None:
        """Record `seconds` spent by `node_name` in `phase`; `start` (a `time.perf_counter`
        reading) places the interval in time for `span_time`."""
        self.timings[(node_name, phase)].append(seconds)
        if start is not None:
            self._extend_span(float(start), float(start) + float(seconds))

    def _extend_span(self, begin: float, end: float) -> None:
        if self.span is None:
            self.span = (begin, end)
        else:
            self.span = (min(self.span[0], begin), max(self.span[1], end))

    def span_time(self) -> float:
        """Seconds from the first recorded start to the last recorded stop (1.x): the wall
        time the recorded work spans, e.g. how long a batch took end to end. 0 if none."""
        return 0.0 if self.span is None else self.span[1] - self.span[0]

    def merge_with(self, other: ProfilingStats) -> None:
        if other is self:
            return
        for key, values in other.timings.items():
            self.timings[key].extend(values)
        if other.span is not None:
            self._extend_span(*other.span)

    def copy(self) -> ProfilingStats:
        new = ProfilingStats()
        new.merge_with(self)
        return new

    def clear(self) -> None:
        self.timings.clear()
        self.span = None

    def get_timing_summaries(self) -> dict[tuple[str, str], TimingSummary]:
        """A `TimingSummary` for each (node, phase) with at least one duration."""
        return {key: TimingSummary(v) for key, v in self.timings.items() if v}

    def get_timing_summary(self, node_name: str, phase: str) -> TimingSummary | None:
        values = self.timings.get((node_name, phase))
        return TimingSummary(values) if values else None

    def node_names(self) -> Iterable[str]:
        return sorted({name for name, _ in self.timings})

    def totals(self) -> dict[str, dict[str, float]]:
        """node → phase → total seconds, in the order the nodes were first recorded."""
        out: dict[str, dict[str, float]] = {}
        for (name, phase), values in self.timings.items():
            if values:
                out.setdefault(name, {})[phase] = sum(values)
        return out

    def table(self, title: str = "Profiling stats") -> str:
        """A text table: one row per (node, phase), times in milliseconds."""
        summaries = self.get_timing_summaries()
        if not summaries:
            return f"{title}: nothing recorded"
        width = max(28, *(len(name) for name, _ in summaries))
        head = (
            f"{'NODE':<{width}} {'PHASE':<10} {'COUNT':>6} {'MIN ms':>10} {'MEDIAN ms':>10} "
            f"{'MAX ms':>10} {'TOTAL s':>9}"
        )
        rows = [title, head, "-" * len(head)]
        for (name, phase), s in summaries.items():
            rows.append(
                f"{name:<{width}} {phase:<10} {s.counts():>6} {s.min() * 1e3:>10.2f} "
                f"{s.median() * 1e3:>10.2f} {s.max() * 1e3:>10.2f} {s.total():>9.3f}"
            )
        return "\n".join(rows)

    def __len__(self) -> int:
        return sum(len(v) for v in self.timings.values())

    def __reduce__(self):
        return (_rebuild_stats, (dict(self.timings), self.span))

    def __repr__(self) -> str:
        rows = [
            f"{name:>28} {phase:>8} median {s.median() * 1e3:8.2f} ms  (n={s.counts()})"
            for (name, phase), s in self.get_timing_summaries().items()
        ]
        return "ProfilingStats(\n" + "\n".join(rows) + "\n)"


def _rebuild_stats(timings: dict, span: tuple[float, float] | None = None) -> ProfilingStats:
    stats = ProfilingStats()
    for k, v in timings.items():
        stats.timings[k] = list(v)
    stats.span = None if span is None else (float(span[0]), float(span[1]))
    return stats


def plot_profiling_stats(
    stats: ProfilingStats, statistic: str = "total", title: str | None = None
) -> Any:
    """A matplotlib `Figure`: one horizontal bar per node, split by phase, of where time goes.

    `statistic` is "total" (seconds summed over all recorded calls) or "median".
    Shows in a notebook as it is; `fig.savefig(path)` writes it to a file.
    """
    from .figures import new_figure

    if statistic not in ("total", "median", "mean", "max", "min"):
        raise ValueError(f"statistic must be total/median/mean/max/min, got {statistic!r}")
    summaries = stats.get_timing_summaries()
    names = list(dict.fromkeys(name for name, _ in summaries))
    phases = [p for p in PHASES if any(ph == p for _, ph in summaries)]
    phases += sorted({ph for _, ph in summaries} - set(phases))
    fig = new_figure(figsize=(8, 0.45 * max(len(names), 1) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    left = [0.0] * len(names)
    for phase in phases:
        widths = [
            summaries[(n, phase)][statistic] if (n, phase) in summaries else 0.0 for n in names
        ]
        ax.barh(names, widths, left=left, label=phase)
        left = [a + b for a, b in zip(left, widths)]
    ax.invert_yaxis()  # the pipeline's source on top, as recorded
    ax.set_xlabel(f"{statistic} seconds" if statistic == "total" else f"{statistic} seconds/call")
    ax.set_title(title or f"Where the time goes ({statistic})")
    if phases:
        ax.legend(loc="lower right")
    return fig


__all__ = ["ProfilingStats", "TimingSummary", "plot_profiling_stats"]
