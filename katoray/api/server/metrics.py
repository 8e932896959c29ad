"""What ``/metrics``, ``/stats``, ``/metrics/{name}`` and ``/health`` report: request counts and
times, and this process's resource use, in KATO's shapes.

Request times are kept for the last ``WINDOW_S`` seconds (at most ``MAX_POINTS`` of them);
resources are sampled at most every ``SAMPLE_EVERY_S`` seconds, when someone asks. CPU and
memory are this server process's share of the machine (KATO reports the machine's), so a busy
neighbour does not make katoray look unhealthy. Standard library only.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from collections import deque
from typing import Any

WINDOW_S = 3600            # time series keep the last hour
MAX_POINTS = 100_000       # request-time points kept (about 5 MB)
SAMPLE_EVERY_S = 5.0       # resource samples at most this often
RECENT_S = 60.0            # "average_1m" and rates: over the last minute
HIGH_CPU_PERCENT, HIGH_MEMORY_PERCENT = 80.0, 90.0   # KATO's health thresholds

RESOURCE_SERIES = ("kato_cpu_usage_percent", "kato_memory_usage_percent", "kato_memory_usage_bytes",
                   "kato_disk_usage_percent", "load_average_1m", "kato_requests_total", "kato_errors_total",
                   "sessions_created", "sessions_deleted")
REQUEST_SERIES = ("kato_request_duration_seconds", "response_time")   # the same points, KATO's two names


class ServerMetrics:
    """Counters and time series of one server process (thread-safe)."""

    def __init__(self, disk_path: str = ".") -> None:
        self.disk_path = disk_path
        self.num_requests = 0
        self.num_errors = 0          # answers with status >= 500
        self._durations: deque[tuple[float, float]] = deque(maxlen=MAX_POINTS)   # (epoch s, seconds)
        self._series: dict[str, deque[tuple[float, float]]] = {name: deque() for name in RESOURCE_SERIES}
        self._lock = threading.Lock()
        self._last_sample = (0.0, time.monotonic(), _cpu_seconds())   # (epoch s, monotonic s, process CPU s)

    def record(self, status: int, duration_s: float) -> None:
        with self._lock:
            self.num_requests += 1
            self.num_errors += status >= 500
            self._durations.append((time.time(), duration_s))

    def sample(self, sessions_created: int, sessions_deleted: int) -> dict[str, float]:
        """The current resource values, added to the time series if the last sample is old."""
        now, mono, cpu = time.time(), time.monotonic(), _cpu_seconds()
        with self._lock:
            last_epoch, last_mono, last_cpu = self._last_sample
            if now - last_epoch < SAMPLE_EVERY_S and self._series["kato_cpu_usage_percent"]:
                return {name: series[-1][1] for name, series in self._series.items()}
            values = _resources(self.disk_path, (cpu - last_cpu) / max(mono - last_mono, 1e-6))
            values.update(kato_requests_total=self.num_requests, kato_errors_total=self.num_errors,
                          sessions_created=sessions_created, sessions_deleted=sessions_deleted)
            for name, value in values.items():
                series = self._series[name]
                series.append((now, value))
                while series and series[0][0] < now - WINDOW_S:
                    series.popleft()
            self._last_sample = (now, mono, cpu)
            return values

    def series(self, name: str, window_s: float) -> list[dict[str, Any]]:
        """Points of one series in the last ``window_s`` seconds (KATO's ``data_points``)."""
        cutoff = time.time() - window_s
        with self._lock:
            points = self._durations if name in REQUEST_SERIES else self._series.get(name, ())
            return [{"timestamp": t, "value": v, "labels": {}} for t, v in points if t > cutoff]

    def performance(self) -> dict[str, float]:
        recent = [p["value"] for p in self.series("response_time", RECENT_S)]
        with self._lock:
            return {"total_requests": self.num_requests, "total_errors": self.num_errors,
                    "error_rate": self.num_errors / self.num_requests if self.num_requests else 0.0,
                    "average_response_time": sum(recent) / len(recent) if recent else 0.0}

    def rates(self) -> dict[str, float]:
        per_s = len(self.series("response_time", RECENT_S)) / RECENT_S
        return {"requests_per_second": per_s, "requests_per_minute": per_s * 60}


def health(resources: dict[str, float]) -> tuple[str, list[str]]:
    """KATO's verdict on the resources: (status, issues)."""
    issues, status = [], "healthy"
    if resources["kato_cpu_usage_percent"] > HIGH_CPU_PERCENT:
        issues.append("High CPU usage")
        status = "degraded"
    if resources["kato_memory_usage_percent"] > HIGH_MEMORY_PERCENT:
        issues.append("High memory usage")
        status = "unhealthy"
    return status, issues


def statistics(points: list[dict[str, Any]]) -> dict[str, float]:
    values = [p["value"] for p in points]
    return {"count": len(values), "min": min(values, default=0), "max": max(values, default=0),
            "avg": sum(values) / len(values) if values else 0}


# -- resources (Linux /proc where it exists; zeros elsewhere) ------------------------------------
def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _resources(disk_path: str, cpu_share: float) -> dict[str, float]:
    """This process's CPU % of the machine (``cpu_share``: CPU s per wall s), its memory."""
    total_memory = _total_memory_bytes()
    rss = _rss_bytes()
    try:
        disk = shutil.disk_usage(disk_path)
        disk_percent = 100.0 * disk.used / disk.total if disk.total else 0.0
    except OSError:
        disk_percent = 0.0
    return {"kato_cpu_usage_percent": min(100.0, 100.0 * cpu_share / (os.cpu_count() or 1)),
            "kato_memory_usage_percent": 100.0 * rss / total_memory if total_memory else 0.0,
            "kato_memory_usage_bytes": float(rss), "kato_disk_usage_percent": disk_percent,
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0}


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # peak, in KiB on Linux


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
