"""One KATO session's working state over a node's knowledge base: STM, time, accumulators.

Pure: no clock, no I/O beyond the ``KnowledgeBase`` protocol. Semantics are KATO's (spec §2-§3)
with two deliberate fixes of data-leaking quirks (spec §10.3 items 1-2):

1. KATO never resets the emotive/metadata accumulators on learn, so a session's emotives and
   metadata leak into every later pattern until clear-stm. Here every learn (explicit or
   automatic) consumes the accumulator entries of the events it learns.
2. KATO stores auto-learned patterns with no emotives and no metadata. Here auto-learned patterns
   keep the emotives and metadata observed with their events, like explicit learns.

Accumulator entries are tagged with the STM length at the time they were observed, so a ROLLING
auto-learn (which keeps the last n-1 events) keeps the entries belonging to the kept events.
"""
from __future__ import annotations

from typing import Any, Sequence

from katoray.engine.config import SessionConfig
from katoray.engine.emotives import accumulate_metadata
from katoray.engine.naming import PATTERN_PREFIX, pattern_hash
from katoray.engine.observation import Observation
from katoray.store.base import KnowledgeBase, PatternDelta

# STM and accumulator bounds KATO's session manager enforces (spec §2.2).
MAX_STM_EVENTS = 1000


class KatoProcessor:
    """Observe / learn / clear over one knowledge base, for one session."""

    def __init__(self, kb: KnowledgeBase, config: SessionConfig | None = None,
                 metadata_cap: int | None = None) -> None:
        self.kb = kb
        self.config = config or SessionConfig()
        self.metadata_cap = metadata_cap  # values kept per metadata key (None: all, as KATO)
        self.stm: list[list[str]] = []
        self.time = 0
        # (stm length when observed, value): lets ROLLING keep the entries of retained events.
        self._emotives: list[tuple[int, dict[str, float]]] = []
        self._metadata: list[tuple[int, dict[str, Any]]] = []

    # -- observe ------------------------------------------------------------------------------
    def observe(self, obs: Observation) -> str | None:
        """Add the observation's event to STM; returns the auto-learned ``PTRN|`` name or None."""
        if obs.has_symbols:
            event = obs.event(self.config.sort_symbols)
            if event:
                self.stm.append(event)
        self.time += 1
        if obs.emotives:
            self._emotives.append((len(self.stm), obs.emotives))
        if obs.metadata:
            self._metadata.append((len(self.stm), obs.metadata))
        learned = self._maybe_auto_learn() if obs.has_symbols else None
        self._enforce_limits()
        return learned

    def _maybe_auto_learn(self) -> str | None:
        limit = self.config.max_pattern_length
        if limit <= 0 or len(self.stm) < limit:
            return None
        if len(self.stm) > 1 and self.config.stm_mode == "ROLLING":
            keep = self.stm[-(limit - 1):] if limit > 1 else []
            name = self.learn(keep_events=len(keep))
            self.stm = keep
        else:
            name = self.learn()
        return name or None  # KATO reports a too-short auto-learn as null, not ""

    def _enforce_limits(self) -> None:
        if len(self.stm) > MAX_STM_EVENTS:
            self._drop_oldest(len(self.stm) - MAX_STM_EVENTS)
        del self._emotives[:-MAX_STM_EVENTS]
        del self._metadata[:-MAX_STM_EVENTS]

    def _drop_oldest(self, n_events: int) -> None:
        del self.stm[:n_events]
        self._emotives = [(tag - n_events, e) for tag, e in self._emotives if tag > n_events]
        self._metadata = [(tag - n_events, m) for tag, m in self._metadata if tag > n_events]

    # -- learn --------------------------------------------------------------------------------
    def learn(self, keep_events: int = 0) -> str:
        """Learn STM as one pattern; ``""`` when it holds fewer than 2 symbols. STM is cleared.

        ``keep_events``: how many trailing events stay in STM for a ROLLING auto-learn; their
        accumulator entries stay with them for the next pattern.
        """
        events = self.stm
        length = sum(len(event) for event in events)
        emotives = [e for _, e in self._emotives]
        metadata = [m for _, m in self._metadata]
        self._consume(len(events) - keep_events)
        self.stm = []
        if length < 2:
            return ""
        name = pattern_hash(events)
        delta = PatternDelta(name, [list(e) for e in events], 1,
                             emotives[-self.config.persistence:], accumulate_metadata(metadata))
        self.kb.apply([delta], persistence=self.config.persistence, metadata_cap=self.metadata_cap)
        return PATTERN_PREFIX + name

    def _consume(self, n_events: int) -> None:
        """Forget accumulator entries of the first ``n_events`` events (they were learned)."""
        self._emotives = [(tag - n_events, e) for tag, e in self._emotives if tag > n_events]
        self._metadata = [(tag - n_events, m) for tag, m in self._metadata if tag > n_events]

    # -- clear --------------------------------------------------------------------------------
    def clear_stm(self) -> None:
        """Empty STM and the accumulators, and reset time (KATO's clear-stm)."""
        self.stm = []
        self.time = 0
        self._emotives = []
        self._metadata = []

    def clear_stm_only(self) -> None:
        """Empty STM and its accumulators but keep time (observe-sequence isolation)."""
        self._consume(len(self.stm))
        self.stm = []

    def percept_emotives(self) -> list[dict[str, float]]:
        """Emotive dicts waiting to be learned with the current STM."""
        return [e for _, e in self._emotives]

    def load_stm(self, events: Sequence[Sequence[str]]) -> None:
        """Replace STM (for restoring a session); accumulators are dropped."""
        self.stm = [list(e) for e in events]
        self._emotives, self._metadata = [], []
