"""Hierarchical learning by driving one KATO session per level (kato-lm's way, without its bugs).

Slow (one observe per symbol) but it talks to any KATO-shaped session: the built-in engine or a
remote KATO server. It is the reference the pure map is checked against, and the path used for
nodes that live on a remote server.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from katoray.config import HierarchyConfig
from katoray.hierarchy.mapping import TokenizedDocument


def one_symbol_events(symbols: list[str]) -> list[dict[str, Any]]:
    """Observations of one symbol per event, as the hierarchy observes (KATO sorts an event's symbols)."""
    return [{"strings": [symbol]} for symbol in symbols]


class SessionLike(Protocol):
    def clear_stm(self) -> Any: ...
    def observe_sequence(self, observations, learn_after_each: bool = False, learn_at_end: bool = False,
                         clear_stm_between: bool = False) -> dict: ...


class SessionHierarchy:
    """Feeds documents through ``sessions[level]``; counts learned and unlearned symbols per level."""

    def __init__(self, sessions: Sequence[SessionLike], config: HierarchyConfig) -> None:
        if len(sessions) < config.num_levels:
            raise ValueError(f"need {config.num_levels} sessions (one per level), got {len(sessions)}")
        self.sessions = list(sessions)[:config.num_levels]
        self.config = config
        self.learned = [0] * config.num_levels
        self.unlearned = [0] * config.num_levels

    def learn_document(self, doc: TokenizedDocument) -> None:
        meta = {k: v for k, v in doc.metadata.items() if v not in (None, "")}
        self._meta = [meta if lvl in self.config.metadata_levels else None for lvl in range(self.config.num_levels)]
        if self.config.mode == "chunking":
            self._chunking(doc.tokens())
        else:
            self._structure(doc)

    def _chunking(self, tokens: list[str]) -> None:
        buffers: list[list[str]] = [[] for _ in self.sessions]

        def push(level: int, symbol: str) -> None:
            buffers[level].append(symbol)
            if len(buffers[level]) == self.config.chunk_sizes[level]:
                flush(level)

        def flush(level: int) -> None:
            symbols, buffers[level] = buffers[level], []
            name = self._learn(level, symbols)
            if name and level + 1 < len(self.sessions):
                push(level + 1, name)

        for token in tokens:
            push(0, token)
        for level in range(len(self.sessions)):  # end of document: every level learns its remainder
            flush(level)

    def _structure(self, doc: TokenizedDocument) -> None:
        top = self.config.num_levels - 1
        section_names = []
        for section in doc.sections:
            paragraph_names = []
            for paragraph in section:
                sentences = [n for n in (self._learn(0, list(s)) for s in paragraph) if n]
                if top >= 1:
                    paragraph_names.append(self._learn(1, sentences))
            if top >= 2:
                section_names.append(self._learn(2, [n for n in paragraph_names if n]))
        if top >= 3:
            self._learn(3, [n for n in section_names if n])

    def _learn(self, level: int, symbols: list[str]) -> str | None:
        """Observe one symbol per event and learn; None (counted) when fewer than 2 symbols."""
        if len(symbols) < 2:
            self.unlearned[level] += len(symbols)
            return None
        observations = one_symbol_events(symbols)
        if self._meta[level]:
            observations[0]["metadata"] = self._meta[level]
        session = self.sessions[level]
        session.clear_stm()
        result = session.observe_sequence(observations, learn_at_end=True)
        name = result.get("final_learned_pattern")
        if not name:
            raise RuntimeError(f"node{level} learned nothing from {len(symbols)} symbols; "
                               f"its session answered {result!r}")
        self.learned[level] += 1
        return name
