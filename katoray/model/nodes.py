"""A run's levels as ``Hierarchy`` reads them: a KATO session over an opened knowledge base, or a
live node actor of the run. Both answer the same three questions."""
from __future__ import annotations

from typing import Any

from katoray.api.session import KatoSession
from katoray.store import KnowledgeBase


def _observations(symbols: list[str]) -> list[dict[str, Any]]:
    return [{"strings": [symbol]} for symbol in symbols]   # one symbol per event, as training observes


class LocalNode:
    """A level read through a KATO session over its knowledge base (no Ray)."""

    def __init__(self, node_id: str, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.session = KatoSession(node_id, kb)

    def predictions(self, symbols: list[str]) -> list[dict[str, Any]]:
        """KATO's predictions after observing ``symbols`` into an empty STM."""
        self.session.clear_stm()
        self.session.observe_sequence(_observations(symbols))
        return self.session.get_predictions()

    def pattern(self, name: str) -> list[list[str]] | None:
        """The events of a pattern (bare name), or None."""
        record = self.kb.get_pattern(name)
        return None if record is None else record.pattern_data

    def stats(self) -> dict[str, Any]:
        totals = self.kb.totals()
        return {"kb_id": self.kb.kb_id, "patterns": totals.total_unique_patterns, "symbols": totals.num_symbols,
                "total_symbols_in_patterns_frequencies": totals.total_symbols_in_patterns_frequencies}


class ActorNode:
    """A level read through the run's live ``NodeActor`` (its interactive KATO session)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.handle, method).remote(*args))

    def predictions(self, symbols: list[str]) -> list[dict[str, Any]]:
        self._call("clear_stm")
        self._call("observe_sequence", _observations(symbols))
        return self._call("get_predictions")

    def pattern(self, name: str) -> list[list[str]] | None:
        record = self._call("get_pattern", name)
        return None if record is None else record["pattern_data"]

    def stats(self) -> dict[str, Any]:
        stats = self._call("stats")
        return {key: stats[key] for key in ("kb_id", "patterns", "symbols", "total_symbols_in_patterns_frequencies")}
