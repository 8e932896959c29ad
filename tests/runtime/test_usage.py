"""What a run reports about CPU and memory: each process's own figures, added up per role."""
from __future__ import annotations

import math
import time

from katoray.runtime.progress import TrainingStats
from katoray.runtime.usage import process_usage


def test_process_usage_sees_this_process_work_and_memory():
    before = process_usage()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:   # 50 ms of CPU
        pass
    block = bytearray(64 * 2 ** 20)         # 64 MiB, touched: resident
    block[::4096] = b"x" * len(block[::4096])
    after = process_usage()
    assert after["cpu_seconds"] - before["cpu_seconds"] >= 0.04
    assert after["peak_rss_mb"] >= 64 and after["peak_rss_mb"] >= before["peak_rss_mb"]
    del block


def row(pid: int, cpu: float, peak: float) -> dict:
    return {"num_docs": 1, "tokens": 10, "empty_docs": 0, "dropped_segments": 0, "worker": pid,
            "applied_0": True, "learned_0": 1, "unlearned_0": 0, "new_0": 1,
            "worker_cpu_seconds": cpu, "worker_peak_rss_mb": peak}


def test_pool_usage_is_each_actors_latest_report_added_up():
    stats = TrainingStats(1)
    for pid, cpu, peak in [(1, 2.0, 300.0), (2, 1.0, 250.0), (1, 1.5, 280.0), (2, 1.25, 260.0)]:
        stats.add(row(pid, cpu, peak))   # rows arrive in any order: an actor's figures only grow
    usage = stats.usage([{"patterns": 3, "cpu_seconds": 0.5, "peak_rss_mb": 120.0}])
    assert usage["mapper_cpu_seconds"] == 2.0 + 1.25 and usage["mapper_peak_rss_mb"] == 300.0
    assert usage["node0_cpu_seconds"] == 0.5 and usage["node0_peak_rss_mb"] == 120.0
    assert usage["driver_cpu_seconds"] >= 0 and usage["driver_peak_rss_mb"] > 0


def test_unknown_figures_are_none_not_zero():
    stats = TrainingStats(1)
    stats.add(row(1, 1.0, math.nan))             # a platform without peak memory
    usage = stats.usage([{"patterns": 3}])       # a node that reports no CPU or memory
    assert usage["mapper_peak_rss_mb"] is None and "node0_cpu_seconds" not in usage
    assert TrainingStats(1).usage([])["mapper_cpu_seconds"] is None   # no batch finished
