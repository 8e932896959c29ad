"""Live statistics of a training run and the one progress line the driver shows.

``TrainingStats`` adds up the small row each finished batch returns (documents, tokens, learns,
new patterns per level, and the CPU and memory its pool actor has used so far); ``ProgressLine``
writes one status line, in place on a terminal and as periodic log lines in a file or pipe (job
logs).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TextIO

from katoray.runtime.usage import process_usage

if TYPE_CHECKING:
    from katoray.runspec import RunSpec

PROGRESS_INTERVAL_S = 0.5      # at most two progress-line updates per second (terminal)
PROGRESS_LOG_INTERVAL_S = 10.0  # one progress line per 10 s when stderr is a file or pipe


# -- statistics --------------------------------------------------------------------------------
@dataclass
class TrainingStats:
    """Counters that add up row by row (one row per finished batch)."""

    num_levels: int
    max_workers: int = 0                                # the pool's size: workers_used never exceeds it
    started: float = field(default_factory=time.monotonic)
    samples: int = 0
    tokens: int = 0
    batches: int = 0
    batches_already_applied: int = 0
    empty_documents: int = 0
    dropped_segments: int = 0
    learned: list[int] = field(default_factory=list)
    unlearned: list[int] = field(default_factory=list)
    new_patterns: list[int] = field(default_factory=list)
    replayed: list[int] = field(default_factory=list)   # learns of batches found already applied
    replayed_unlearned: list[int] = field(default_factory=list)   # their symbols left unlearned
    workers: set[int] = field(default_factory=set)      # pool actor pids that finished a batch
    # pid -> (CPU seconds, peak RSS MiB) of each pool actor, its latest report (both only grow)
    worker_usage: dict[int, tuple[float, float]] = field(default_factory=dict)
    driver_cpu_started: float = field(default_factory=time.process_time)

    def __post_init__(self) -> None:
        self.learned = [0] * self.num_levels
        self.unlearned = [0] * self.num_levels
        self.new_patterns = [0] * self.num_levels
        self.replayed = [0] * self.num_levels
        self.replayed_unlearned = [0] * self.num_levels

    def add(self, row: Mapping[str, Any]) -> None:
        self.batches += 1
        self.samples += int(row["num_docs"])
        self.tokens += int(row["tokens"])
        self.empty_documents += int(row["empty_docs"])
        self.dropped_segments += int(row["dropped_segments"])
        self.workers.add(int(row["worker"]))
        self._add_usage(int(row["worker"]), row)
        if not any(row[f"applied_{i}"] for i in range(self.num_levels)):
            self.batches_already_applied += 1
        for i in range(self.num_levels):
            if row[f"applied_{i}"]:            # a batch applied before adds nothing this run
                self.learned[i] += int(row[f"learned_{i}"])
                self.unlearned[i] += int(row[f"unlearned_{i}"])
                self.new_patterns[i] += int(row[f"new_{i}"])
            else:
                # A replay of a batch some earlier attempt applied (after its last checkpoint, or
                # before a Ray retry): counted apart, so a resume can add what no checkpoint holds.
                self.replayed[i] += int(row[f"learned_{i}"])
                self.replayed_unlearned[i] += int(row[f"unlearned_{i}"])

    def _add_usage(self, pid: int, row: Mapping[str, Any]) -> None:
        if "worker_cpu_seconds" not in row:
            return
        cpu, peak = float(row["worker_cpu_seconds"]), float(row["worker_peak_rss_mb"])   # NaN: unknown
        seen = self.worker_usage.get(pid)
        self.worker_usage[pid] = (cpu, peak) if seen is None else (max(seen[0], cpu), max(seen[1], peak))

    def usage(self, nodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """CPU seconds and peak memory (MiB) per role: the driver (this process, CPU during the
        run), the pool (CPU summed over the actors that finished a batch, start-up included; the
        largest peak), and each node actor (from its ``stats()``; absent when a node reports
        none)."""
        driver = process_usage()
        pool = list(self.worker_usage.values())
        out: dict[str, Any] = {
            "driver_cpu_seconds": time.process_time() - self.driver_cpu_started,
            "driver_peak_rss_mb": driver["peak_rss_mb"],
            "mapper_cpu_seconds": sum(cpu for cpu, _ in pool) if pool else None,
            "mapper_peak_rss_mb": _known_max(peak for _, peak in pool)}
        for i, node in enumerate(nodes):
            if "cpu_seconds" in node:
                out[f"node{i}_cpu_seconds"] = node["cpu_seconds"]
                out[f"node{i}_peak_rss_mb"] = node["peak_rss_mb"]
        return out

    @property
    def workers_used(self) -> int:
        """Pool workers that mapped a batch (an actor Ray restarted is the same worker again)."""
        return min(len(self.workers), self.max_workers) if self.max_workers else len(self.workers)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def progress_text(self, patterns: Sequence[int] | None) -> str:
        elapsed = max(self.elapsed, 1e-9)
        text = (f"katoray {self.samples:,} docs {self.samples / elapsed:,.1f}/s · {_short(self.tokens)} tokens "
                f"{_short(self.tokens / elapsed)}/s")
        if patterns:
            text += " · patterns " + " ".join(f"n{i} {_short(p)}" for i, p in enumerate(patterns))
        return text

    def counters(self) -> dict[str, Any]:
        """The counts so far (what a checkpoint records)."""
        elapsed = self.elapsed
        out: dict[str, Any] = {
            "samples_processed": self.samples, "tokens_processed": self.tokens, "total_time_seconds": elapsed,
            "rate_samples_per_sec": self.samples / elapsed if elapsed else 0.0,
            "rate_tokens_per_sec": self.tokens / elapsed if elapsed else 0.0, "batches_processed": self.batches,
            "batches_already_applied": self.batches_already_applied, "empty_documents": self.empty_documents,
            "dropped_segments": self.dropped_segments, "workers_used": self.workers_used}
        for i in range(self.num_levels):
            out[f"node{i}_observations"] = self.learned[i]
            out[f"node{i}_unlearned"] = self.unlearned[i]
            out[f"node{i}_new_patterns"] = self.new_patterns[i]
            out[f"node{i}_replayed_observations"] = self.replayed[i]
            out[f"node{i}_replayed_unlearned"] = self.replayed_unlearned[i]
            # 1 - new patterns / learn events: the share of this run's learns that hit a known pattern
            out[f"node{i}_reuse_rate"] = 1.0 - self.new_patterns[i] / self.learned[i] if self.learned[i] else 0.0
        return out

    def summary(self, spec: "RunSpec", nodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The run's statistics: counters, the unique patterns now in each level's KB (``nodes``:
        each level's ``NodeActor.stats()``), and what each role used (``usage``)."""
        out = {"run_id": spec.run_id, "num_workers": spec.workers, "batch_size": spec.batching.batch_size,
               **self.counters()}
        for i, node in enumerate(nodes):
            out[f"node{i}_patterns"] = node["patterns"]
            if "shards" in node:     # a sharded level (runtime.sinks.merge_node_stats)
                out[f"node{i}_shards"] = node["shards"]
        return {**out, **self.usage(nodes)}


def _known_max(values) -> float | None:
    known = [v for v in values if not math.isnan(v)]
    return max(known) if known else None


def _short(value: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


class ProgressLine:
    """One status line on a terminal, rewritten in place (``\\r``) at most every ``interval_s``;
    on a file or pipe (job logs), a new line every ``log_interval_s`` instead."""

    def __init__(self, stream: TextIO | None, interval_s: float = PROGRESS_INTERVAL_S,
                 log_interval_s: float = PROGRESS_LOG_INTERVAL_S) -> None:
        self.stream = stream
        self.is_tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.interval_s = interval_s if self.is_tty else log_interval_s
        self._last = time.monotonic()
        self._width = 0

    def is_due(self) -> bool:
        return self.stream is not None and time.monotonic() - self._last >= self.interval_s

    def update(self, text: str, force: bool = False) -> None:
        if self.stream is None or not (force or self.is_due()):
            return
        self._last = time.monotonic()
        if self.is_tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, text: str | None = None) -> None:
        """Final line (``text``), or just end the line in place after an error."""
        if self.stream is None:
            return
        if text is not None:
            self.update(text, force=True)
        if self.is_tty and self._width:
            self.stream.write("\n")
            self._width = 0
        self.stream.flush()
