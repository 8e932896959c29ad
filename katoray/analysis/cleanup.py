"""Hierarchy-safe cleanup: delete rare patterns at every level without breaking the levels above.

kato-lm deleted node0 patterns that node1 patterns still referenced, so unravelling lost text.
Here a pattern of frequency < ``threshold`` is deleted only if no pattern that survives at the
level above holds its ``PTRN|`` name. The plan is made top-down before anything is deleted:
the top level's rare patterns all go; at each level below, a rare pattern stays while some
parent pattern outside the parent level's deletions still uses it (the parent level's symbol
pmf, less the deleted parents holding it). So ``dry_run=True`` reports exactly what the real
cleanup deletes, and the real one deletes top-down (parents before their children), so a
cleanup cut short never leaves a parent whose child is gone.

Memory: the rare names of one level at a time and, for the level below, the rare child names
the deleted parents hold (streamed from the store in chunks of ``CHUNK``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from katoray.engine.naming import PATTERN_PREFIX
from katoray.errors import ConfigError
from katoray.store import KnowledgeBase

CHUNK = 10_000   # names per store read (a MongoDB $in of 10k names stays far below its 16 MiB limit)


@dataclass(frozen=True)
class LevelCleanup:
    """One level's part of a cleanup (``deleted`` + ``kept_for_parents`` = rare patterns)."""

    node: str
    patterns: int              # before the cleanup
    deleted: int               # rare patterns deleted (or that a dry run would delete)
    deleted_frequency: int     # their total frequency
    kept_for_parents: int      # rare patterns kept because a surviving parent pattern uses them
    doomed: tuple[str, ...] = field(default=(), repr=False)   # the deleted names (bare), sorted

    def describe(self, threshold: int, dry_run: bool) -> str:
        verb = "would delete" if dry_run else "deleted"
        return (f"{self.node}: {verb} {self.deleted:,} of {self.patterns:,} patterns with frequency < {threshold} "
                f"(total frequency {self.deleted_frequency:,}); kept {self.kept_for_parents:,} rare patterns "
                "that a parent pattern still uses")


def cleanup_levels(kbs: Sequence[KnowledgeBase], nodes: Sequence[str], threshold: int,
                   dry_run: bool = False) -> list[LevelCleanup]:
    """Plan the cleanup of ``kbs`` (level order, ``nodes`` their names) and, unless ``dry_run``,
    carry it out top-down. Returns one ``LevelCleanup`` per level, in level order."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(f"threshold must be an int >= 1 (patterns of lower frequency are deleted), got {threshold!r}")
    plans: list[LevelCleanup] = []
    doomed_above: tuple[str, ...] = ()
    for level in reversed(range(len(kbs))):
        parent = kbs[level + 1] if level + 1 < len(kbs) else None
        plan = _plan_level(kbs[level], nodes[level], threshold, parent, doomed_above)
        plans.append(plan)
        doomed_above = plan.doomed
    if not dry_run:
        for level, plan in zip(reversed(range(len(kbs))), plans):   # top-down, as planned
            kbs[level].delete_patterns(plan.doomed)
    return plans[::-1]


def _plan_level(kb: KnowledgeBase, node: str, threshold: int, parent: KnowledgeBase | None,
                doomed_above: Sequence[str]) -> LevelCleanup:
    patterns, rare = 0, {}
    for name, frequency in kb.iter_frequencies():
        patterns += 1
        if frequency < threshold:
            rare[name] = frequency
    used = _used_by_survivors(parent, list(rare), doomed_above) if parent is not None and rare else set()
    doomed = tuple(sorted(name for name in rare if name not in used))
    return LevelCleanup(node, patterns, len(doomed), sum(rare[name] for name in doomed), len(rare) - len(doomed),
                        doomed)


def _used_by_survivors(parent: KnowledgeBase, names: list[str], doomed_parents: Sequence[str]) -> set[str]:
    """Those of ``names`` (bare) that a parent pattern outside ``doomed_parents`` holds."""
    holders: Counter = Counter()   # PTRN| name -> parent patterns holding it
    for chunk in _chunks([PATTERN_PREFIX + name for name in names]):
        holders.update(parent.symbol_pmf(chunk))
    if holders and doomed_parents:
        for chunk in _chunks(doomed_parents):
            for record in parent.get_patterns(chunk).values():
                held = {s for event in record.pattern_data for s in event}
                holders.subtract(s for s in held if s in holders)
    return {symbol[len(PATTERN_PREFIX):] for symbol, count in holders.items() if count > 0}


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]
