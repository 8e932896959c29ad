"""A run's levels as ``Hierarchy`` reads them: a KATO session over an opened knowledge base, or a
live node actor of the run (``katoray.runtime.node.ActorNode``). Both answer the same three
questions: predictions after some symbols, a pattern's events, the level's statistics."""
from __future__ import annotations

from typing import Any

from katoray.api.session import KatoSession
from katoray.hierarchy.sessions import one_symbol_events
from katoray.store import KnowledgeBase


class LocalNode:
    """A level read through a KATO session over its knowledge base (no Ray)."""

    def __init__(self, node_id: str, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.session = KatoSession(node_id, kb)

    def predictions(self, symbols: list[str]) -> list[dict[str, Any]]:
        """KATO's predictions after observing ``symbols`` into an empty STM."""
        self.session.clear_stm()
        self.session.observe_sequence(one_symbol_events(symbols))
        return self.session.get_predictions()

    def pattern(self, name: str) -> list[list[str]] | None:
        """The events of a pattern (bare name), or None."""
        record = self.kb.get_pattern(name)
        return None if record is None else record.pattern_data

    def stats(self) -> dict[str, Any]:
        totals = self.kb.totals()
        return {"kb_id": self.kb.kb_id, "patterns": totals.total_unique_patterns, "symbols": totals.num_symbols,
                "total_symbols_in_patterns_frequencies": totals.total_symbols_in_patterns_frequencies}
