"""Emotives and metadata helpers (spec §2.5, §3.3, §4.6)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping


def average_emotives(emotives: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per-key mean over the dicts that contain the key (KATO's ``average_emotives``)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for entry in emotives:
        for key, value in entry.items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


def accumulate_metadata(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Per key, the sorted unique ``str(value)`` (as KATO: a list value becomes its repr).

    ``[{'book': 't1'}, {'book': 't2'}, {'book': 't1'}, {'author': 'Smith'}]``
    -> ``{'author': ['Smith'], 'book': ['t1', 't2']}``
    """
    out: dict[str, set[str]] = {}
    for entry in entries:
        for key, value in entry.items():
            out.setdefault(key, set()).add(str(value))
    return {key: sorted(values) for key, values in sorted(out.items())}
