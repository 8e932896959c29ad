"""A run's checkpoint: which batches are durable at every level, and the statistics so far.

``<runs_dir>/<run_id>/checkpoint.json`` is rewritten atomically (a temporary file, then
``os.replace``) every ``checkpoint_interval`` documents. The knowledge bases are already durable
when a batch completes; the checkpoint only records which batches those are, so a resume can skip
them. Batches made durable after the last checkpoint are re-sent on resume and recognised by the
stores' batch-id ledgers: each batch counts exactly once.

Batch ids (``s00003-b00000012``: shard 3, batch 12) are stored compactly, per shard as inclusive
ranges of batch numbers::

    {"s00000": [[0, 41], [43, 50]], "s00001": [[0, 7]]}
"""
from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from katoray.errors import ConfigError

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_FORMAT = 1
_BATCH_ID = re.compile(r"^(s\d+)-b(\d+)$")
_BATCH_DIGITS = 8   # katoray.runtime.source.BATCH_DIGITS: ids are rebuilt with the same padding

# Counters that add up across a run's attempts (first start, then each resume). Every other
# statistic is recomputed from these, or is a property of the latest attempt.
ADDITIVE = ("samples_processed", "tokens_processed", "total_time_seconds", "batches_processed",
            "batches_already_applied", "empty_documents", "dropped_segments", "checkpoints_saved")
ADDITIVE_PER_LEVEL = ("observations", "unlearned", "new_patterns")


# -- batch ids -----------------------------------------------------------------------------------
def compress_batch_ids(ids: Iterable[str]) -> dict[str, list]:
    """Batch ids as per-shard inclusive ranges; ids of another form are kept under ``"other"``."""
    numbers: dict[str, list[int]] = {}
    other: list[str] = []
    for batch_id in ids:
        match = _BATCH_ID.match(batch_id)
        if match is None or len(match.group(2)) != _BATCH_DIGITS:
            other.append(batch_id)
        else:
            numbers.setdefault(match.group(1), []).append(int(match.group(2)))
    out: dict[str, list] = {shard: _ranges(sorted(nums)) for shard, nums in sorted(numbers.items())}
    if other:
        out["other"] = sorted(other)
    return out


def expand_batch_ids(compact: Mapping[str, list]) -> frozenset[str]:
    """The inverse of ``compress_batch_ids``."""
    ids = set(compact.get("other", ()))
    for shard, ranges in compact.items():
        if shard == "other":
            continue
        for first, last in ranges:
            ids.update(f"{shard}-b{n:0{_BATCH_DIGITS}d}" for n in range(first, last + 1))
    return frozenset(ids)


def _ranges(numbers: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        elif not out or n > out[-1][1]:
            out.append([n, n])
    return out


# -- statistics across attempts ------------------------------------------------------------------
def combine_statistics(before: Mapping[str, Any], attempt: Mapping[str, Any]) -> dict[str, Any]:
    """A run's statistics: the totals of earlier attempts (``before``) plus this attempt's, each
    batch counted exactly once, so a resumed run ends with an uninterrupted run's figures.

    An earlier attempt's totals are those of its last checkpoint, whose batches a resume skips;
    batches it finished after that checkpoint are re-read and counted once, by the resuming
    attempt: their documents and tokens as usual, their learns and unlearned symbols from
    ``node{i}_replayed_*`` (the stores recognise those applies as done). New patterns: once the
    statistics hold ``node{i}_patterns`` (at the end), the patterns in the run's own knowledge
    base, which the run created, every one (a run trains only into knowledge bases it owns).
    ``workers_used`` is the most any attempt used. ``batches_already_applied`` counts the replays
    themselves (0 for an uninterrupted run).
    """
    out = dict(attempt)
    for key in ADDITIVE:
        out[key] = before.get(key, 0) + attempt.get(key, 0)
    out["workers_used"] = max(before.get("workers_used", 0), attempt.get("workers_used", 0))
    levels = sorted({int(k[4:].split("_", 1)[0]) for k in attempt if re.match(r"^node\d+_observations$", k)})
    for i in levels:
        for suffix in ADDITIVE_PER_LEVEL:
            key = f"node{i}_{suffix}"
            out[key] = before.get(key, 0) + attempt.get(key, 0)
        out[f"node{i}_observations"] += attempt.get(f"node{i}_replayed_observations", 0)
        out[f"node{i}_unlearned"] += attempt.get(f"node{i}_replayed_unlearned", 0)
        if f"node{i}_patterns" in attempt:
            out[f"node{i}_new_patterns"] = attempt[f"node{i}_patterns"]
        learned = out[f"node{i}_observations"]
        out[f"node{i}_reuse_rate"] = 1.0 - out[f"node{i}_new_patterns"] / learned if learned else 0.0
    elapsed = out["total_time_seconds"]
    out["rate_samples_per_sec"] = out["samples_processed"] / elapsed if elapsed else 0.0
    out["rate_tokens_per_sec"] = out["tokens_processed"] / elapsed if elapsed else 0.0
    return out


# -- the file --------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """Completed batch ids of a run and its statistics up to them (totals over all attempts)."""

    run_id: str
    completed: frozenset[str] = frozenset()
    statistics: dict[str, Any] = field(default_factory=dict)
    updated: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "run_id": self.run_id, "updated": self.updated,
                "num_completed_batches": len(self.completed),
                "completed_batches": compress_batch_ids(self.completed), "statistics": self.statistics}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Checkpoint":
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"checkpoint format {data.get('format')!r} is not {CHECKPOINT_FORMAT}; this katoray "
                              "cannot resume that run")
        completed = expand_batch_ids(data.get("completed_batches", {}))
        if len(completed) != data.get("num_completed_batches", len(completed)):
            raise ConfigError(f"checkpoint of run {data.get('run_id')!r} is inconsistent: it lists "
                              f"{len(completed)} batches but says {data['num_completed_batches']}")
        return cls(data["run_id"], completed, dict(data.get("statistics", {})), data.get("updated"))

    def save(self, run_dir: str | os.PathLike) -> Path:
        path = Path(run_dir) / CHECKPOINT_FILE
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "Checkpoint | None":
        """The run's checkpoint, or None if it has none yet (killed before its first one)."""
        path = Path(run_dir) / CHECKPOINT_FILE
        if not path.exists():
            return None
        return cls.from_dict(read_json(path))


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write JSON to ``path`` so a reader sees the old file or the new one, never a part of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # the umask applies, as for any file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=indent, separators=None if indent else (",", ":"), default=_jsonable)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())   # the data reaches the disk before the rename makes it current
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{str(path)!r} is not valid JSON ({err}); it was not written by katoray, or was "
                          "edited by hand") from err


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
