"""What one process has used so far, for a run's statistics: CPU seconds and peak memory.

Each node actor and pool actor reports its own figures (a fresh process per run, so they cover
its start-up and its share of the run); the driver adds them up per role. On two cores a run is
CPU-bound, so "where did the CPU go" answers "why this many tokens per second".
"""
from __future__ import annotations

import os
import sys

try:
    import resource
except ImportError:      # not on Windows: peak memory is then not reported
    resource = None

# ru_maxrss counts bytes on macOS and KiB on Linux and the BSDs.
_MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024


def process_usage() -> dict[str, float | None]:
    """``cpu_seconds``: user + system time of every thread since the process started.
    ``peak_rss_mb``: the most resident memory it has held, in MiB (None where unknown)."""
    times = os.times()
    peak = None
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_BYTES / 2 ** 20
    return {"cpu_seconds": times.user + times.system, "peak_rss_mb": peak}
