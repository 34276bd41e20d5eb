"""Profiling: summaries against their definitions, merging, the text table, the chart, and
PrintProfilingStats (also for batches made in worker processes)."""

import io
import pickle
import statistics
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes import PreCache, PrintProfilingStats
from gunpowder.pipeline import Node
from gunpowder.profiling import ProfilingStats, TimingSummary, plot_profiling_stats

pytestmark = pytest.mark.timeout(60)

RAW = gp.ArrayKey("RAW")
durations = st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=30)


class Busy(Node):
    def process(self, batch, ctx):
        time.sleep(0.002)
        return batch


def pipeline_and_request():
    source = gp.ArraySource(RAW, np.zeros((10, 10, 10), np.float32))
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (4, 4, 4)))
    return source + Busy(), request


@settings(max_examples=40, deadline=None)
@given(durations)
def test_timing_summary_matches_its_definitions(times):
    s = TimingSummary(times)
    assert s.min() == min(times) and s["min"] == min(times)
    assert s.max() == max(times)
    assert s.median() == statistics.median(times)
    assert s.mean() == pytest.approx(statistics.fmean(times))
    assert s.total() == pytest.approx(sum(times))
    assert s.counts() == s["count"] == len(times)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from(["A", "B", "C"]), durations), durations)
def test_merging_concatenates_and_pickling_keeps_everything(by_node, more):
    a, b = ProfilingStats(), ProfilingStats()
    for name, times in by_node.items():
        for t in times:
            a.add(name, "process", t)
    for t in more:
        b.add("A", "process", t)
    merged = a.copy()
    merged.merge_with(b)
    assert merged.timings[("A", "process")] == by_node.get("A", []) + more
    assert len(merged) == len(a) + len(b)
    assert pickle.loads(pickle.dumps(merged)).timings == merged.timings
    merged.merge_with(merged)  # merging with itself changes nothing
    assert len(merged) == len(a) + len(b)


def test_batches_carry_stats_and_the_table_lists_every_node():
    pipeline, request = pipeline_and_request()
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    summaries = batch.profiling_stats.get_timing_summaries()
    assert ("ArraySource", "provide") in summaries
    assert summaries[("Busy", "process")].min() >= 0.002
    table = batch.profiling_stats.table()
    for name in ("ArraySource", "Busy", "MEDIAN ms"):
        assert name in table


def test_plot_returns_a_figure_with_one_bar_per_node_and_phase():
    stats = ProfilingStats()
    for node, phase, t in [("Src", "provide", 0.3), ("F", "prepare", 0.1), ("F", "process", 0.2)]:
        stats.add(node, phase, t)
    fig = plot_profiling_stats(stats)
    ax = fig.axes[0]
    widths = sorted(round(p.get_width(), 6) for p in ax.patches if p.get_width() > 0)
    assert widths == [0.1, 0.2, 0.3]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Src", "F"]
    fig.savefig(io.BytesIO(), format="png")
    with pytest.raises(ValueError, match="statistic"):
        plot_profiling_stats(stats, statistic="p99")


def test_print_profiling_stats_prints_every_n_batches_with_upstream_and_downstream():
    out = io.StringIO()
    pipeline, request = pipeline_and_request()
    pipeline = pipeline + PrintProfilingStats(every=2, file=out)
    with gp.build(pipeline):
        for _ in range(4):
            pipeline.request_batch(request)
            time.sleep(0.003)  # the "training step", downstream of the printer
    text = out.getvalue()
    assert text.count("Profiling stats of the last 2 batch(es)") == 2
    last = text.split("Profiling stats of the last")[-1]
    rows = {tuple(line.split()[:3]) for line in last.splitlines()[2:]}
    assert ("Busy", "process", "2") in rows
    assert ("PrintProfilingStats", "upstream", "2") in rows
    assert ("PrintProfilingStats", "downstream", "2") in rows


def test_print_profiling_stats_reports_nodes_that_ran_in_workers():
    out = io.StringIO()
    pipeline, request = pipeline_and_request()
    printer = PrintProfilingStats(every=3, file=out)
    pipeline = pipeline + PreCache(cache_size=2, num_workers=2) + printer
    with gp.build(pipeline):
        for _ in range(3):
            pipeline.request_batch(request)
    for name in ("ArraySource", "Busy", "PreCache"):
        assert name in printer.last_report
    assert printer.last_report in out.getvalue()


def test_print_profiling_stats_rejects_every_below_one():
    with pytest.raises(ValueError, match="every"):
        PrintProfilingStats(every=0)
