"""Summaries of a frequency histogram (``{frequency: number of patterns}``): pure, no store.

A level of a million patterns has a few thousand distinct frequencies, so everything here works
on the histogram the store counted, never on the patterns.

Zipf's law says the r-th most frequent pattern has frequency ``f(r) ~ C r^-s``. Patterns sharing
a frequency tie for a run of ranks; ``rank_frequency`` keeps one point per distinct frequency,
at the first rank of its run (1 + the number of more frequent patterns), which is the staircase
a plot of every pattern would show, without the long flat runs of ties outweighing everything
else. ``zipf_fit`` is the least-squares line through those points in log10-log10 space:
``log10 f = log10 C - s log10 r``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

# kato-lm's frequency buckets for get_stats()["frequency_ranges"]
FREQUENCY_RANGES = (("1", 1, 1), ("2-5", 2, 5), ("6-10", 6, 10), ("11-50", 11, 50), (">50", 51, None))


def frequency_stats(histogram: Mapping[int, int]) -> dict[str, Any]:
    """kato-lm's ``get_stats()``: totals, average (both spellings), max, min, median and the
    frequency ranges of a histogram."""
    total = sum(histogram.values())
    stats: dict[str, Any] = {"total_patterns": total,
                             "total_frequency": sum(f * n for f, n in histogram.items())}
    if total:
        avg = stats["total_frequency"] / total
        stats.update(avg_frequency=avg, average_frequency=avg, max_frequency=max(histogram),
                     min_frequency=min(histogram), median_frequency=median(histogram))
    else:
        stats.update(avg_frequency=0.0, average_frequency=0.0, max_frequency=0, min_frequency=0, median_frequency=0)
    stats["frequency_ranges"] = {label: sum(n for f, n in histogram.items() if f >= lo and (hi is None or f <= hi))
                                 for label, lo, hi in FREQUENCY_RANGES}
    return stats


def median(histogram: Mapping[int, int]) -> float:
    """The median frequency (``statistics.median`` of every pattern's frequency), from the counts."""
    total = sum(histogram.values())
    if not total:
        raise ValueError("the median of an empty histogram is undefined")
    middle = [(total - 1) // 2, total // 2]   # 0-based positions of the one or two middle values
    found: list[int] = []
    seen = 0
    for frequency, count in sorted(histogram.items()):
        while middle and middle[0] < seen + count:
            found.append(frequency)
            middle.pop(0)
        seen += count
    return found[0] if found[0] == found[1] else (found[0] + found[1]) / 2


def rank_frequency(histogram: Mapping[int, int]) -> list[tuple[int, int]]:
    """(first rank, frequency) per distinct frequency, most frequent first (rank 1)."""
    points, rank = [], 1
    for frequency, count in sorted(histogram.items(), reverse=True):
        points.append((rank, frequency))
        rank += count
    return points


class ZipfFit(NamedTuple):
    """``f(r) = 10**intercept * r**-exponent``, fitted on ``num_points`` points."""

    exponent: float
    intercept: float
    num_points: int


def zipf_fit(histogram: Mapping[int, int]) -> ZipfFit | None:
    """The least-squares Zipf exponent of a histogram (module docstring); None with fewer than
    two distinct frequencies (no line to fit)."""
    points = [(math.log10(r), math.log10(f)) for r, f in rank_frequency(histogram) if f > 0]
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return ZipfFit(-slope, mean_y - slope * mean_x, n)
