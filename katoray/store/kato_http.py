"""A knowledge base that lives in a KATO server: ``kato+http://host:port`` (or ``kato+https``).

This is how hierarchy nodes with a ``base_url`` train with the parallel trainer: their node
actors write each level's merged counts to the server through this store, unchanged otherwise.
Knowledge base ``<node>_kato`` is node ``<node>`` of the server, which names it by KATO's rule
(``kb_id_for``: a run's ``node0_2026-x_kato`` is the server's ``node0_2026_x_kato``).

- **katoray serve**: one ``POST /nodes/{node}/apply`` per batch, with its batch id. The server
  applies it in one idempotent step (its store's ledger), so a batch re-sent after a crash or a
  Ray retry counts once: **exactly once**. ``count``, ``totals`` and ``is_applied`` ask it.
- **A KATO server** (no bulk route): each learn of a batch is replayed as one
  ``observe-sequence`` with ``learn_at_end`` on a session of the node. Names, frequencies,
  emotives and metadata come out as the built-in engine's, but KATO keeps no record of batches:
  a batch re-sent after a failure is learned again, so this is **at least once**. KATO has no
  route that counts patterns: ``count``/``totals`` describe what this store has sent.

Reads that predictions need (symbol indexes and statistics) are not offered: ask the server's
own API (sessions, ``GET /pattern``). They raise ``StoreError`` saying so.
"""
from __future__ import annotations

import threading
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import quote

import requests

from katoray.errors import ConfigError, StoreError, StoreUnreachableError
from katoray.store.base import (DeltaColumns, KBTotals, PatternDelta, PatternRecord, check_apply_args)

SCHEMES = ("kato+http", "kato+https")
TIMEOUT_S = 300.0   # one batch of a level can be large


def store_url_for(base_url: str) -> str:
    """The store URL of a KATO server's base URL: ``http://host:8000`` -> ``kato+http://host:8000``."""
    if not isinstance(base_url, str) or not base_url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"base_url must be a KATO server's http:// or https:// URL, got {base_url!r}")
    return "kato+" + base_url.rstrip("/")


class KatoHttpStore:
    """The knowledge base ``kb_id`` of the KATO server at ``url`` (see the module docstring)."""

    def __init__(self, url: str, kb_id: str, *, timeout_s: float = TIMEOUT_S, bulk: bool | None = None) -> None:
        """``bulk``: None asks the server what it is; False replays learns as on a KATO server."""
        self.kb_id = kb_id
        self.node_id = kb_id.removesuffix("_kato")   # the server names its KB by KATO's rule: kb_id_for(node_id)
        scheme, rest = url.split("://", 1)
        self.base_url = f"{scheme.lower().removeprefix('kato+')}://{rest}".rstrip("/")
        self.timeout_s = timeout_s
        self._http = requests.Session()
        self._lock = threading.Lock()
        self.is_katoray = self._call("GET", "/").get("architecture") == "katoray" if bulk is None else bulk
        self._sent: dict[str, int] = {}   # KATO servers: pattern name -> length, of what this store sent
        self._sent_symbols = 0

    def __repr__(self) -> str:
        return f"KatoHttpStore({self.base_url!r}, kb_id={self.kb_id!r})"

    # -- transport ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, params: dict | None = None) -> dict[str, Any]:
        try:
            answer = self._http.request(method, self.base_url + quote(path, safe="/"), json=body, params=params,
                                        timeout=self.timeout_s)
        except requests.ConnectionError as err:
            raise StoreUnreachableError(f"KATO server {self.base_url} is unreachable ({type(err).__name__}); start "
                                        "it (katoray serve) or fix the node's base_url") from None
        except requests.RequestException as err:
            raise StoreError(f"{method} {path} on {self.base_url} failed: {err}") from None
        if answer.status_code != 200:
            raise StoreError(f"{method} {path} on {self.base_url} answered {answer.status_code}: {answer.text[:500]}")
        return answer.json()

    # -- writes ------------------------------------------------------------------------------------
    def apply(self, deltas: Sequence[PatternDelta], batch_id: str | None = None, *,
              persistence: int = 5, metadata_cap: int | None = None) -> bool:
        check_apply_args(persistence, metadata_cap)
        if self.is_katoray:
            body = {"patterns": [{"name": d.name, "events": d.events, "count": d.count, "emotives": d.emotives,
                                  "metadata": d.metadata} for d in deltas],
                    "batch_id": batch_id, "persistence": persistence, "metadata_cap": metadata_cap}
            return self._call("POST", f"/nodes/{self.node_id}/apply", body)["applied"]
        with self._lock:
            self._replay(deltas, persistence)
        return True

    def apply_columns(self, columns: DeltaColumns, batch_id: str | None = None, *,
                      persistence: int = 5, metadata_cap: int | None = None) -> bool:
        return self.apply(columns.to_deltas(), batch_id, persistence=persistence, metadata_cap=metadata_cap)

    def _replay(self, deltas: Sequence[PatternDelta], persistence: int) -> None:
        """Each learn as one observe-sequence on a KATO session of the node (at least once)."""
        config = {"persistence": persistence, "max_pattern_length": 0, "stm_mode": "CLEAR"}
        session = self._call("POST", "/sessions", {"node_id": self.node_id, "config": config})["session_id"]
        try:
            for delta in deltas:
                for k in range(delta.count):
                    observations = replay_observations(delta, first=k == 0)
                    answer = self._call("POST", f"/sessions/{session}/observe-sequence",
                                        {"observations": observations, "learn_at_end": True})
                    if answer.get("final_learned_pattern") != "PTRN|" + delta.name:
                        raise StoreError(f"KATO server {self.base_url} learned {answer.get('final_learned_pattern')!r} "
                                         f"for pattern {delta.name}: it names patterns differently")
                    self._call("POST", f"/sessions/{session}/clear-stm")
                self._sent.setdefault(delta.name, delta.length)
                self._sent_symbols += delta.length * delta.count
        finally:
            self._call("DELETE", f"/sessions/{session}")

    def is_applied(self, batch_id: str) -> bool:
        if not self.is_katoray:
            return False   # KATO keeps no record of batches
        return self._call("GET", f"/nodes/{self.node_id}/batches/{batch_id}")["applied"]

    def claim_owner(self, owner: str) -> str:
        """katoray serve records the run that owns the node; KATO keeps no owner (two runs
        writing one KATO node are not refused): ``owner`` is returned as if recorded."""
        if not self.is_katoray:
            return owner
        return self._call("POST", f"/nodes/{self.node_id}/owner", {"owner": owner})["owner"]

    def clear(self) -> None:
        """KATO's clear-all of the node (its whole knowledge base)."""
        session = self._call("POST", "/sessions", {"node_id": self.node_id})["session_id"]
        self._call("POST", f"/sessions/{session}/clear-all")
        self._call("DELETE", f"/sessions/{session}")
        self._sent.clear()
        self._sent_symbols = 0

    # -- reads -------------------------------------------------------------------------------------
    def totals(self) -> KBTotals:
        if self.is_katoray:
            found = self._call("GET", f"/nodes/{self.node_id}/totals")
            return KBTotals(*(found[f] for f in ("total_unique_patterns", "total_pattern_frequencies",
                                                 "total_symbols_in_patterns_frequencies", "num_symbols")))
        return KBTotals(len(self._sent), len(self._sent), self._sent_symbols, 0)

    def count(self) -> int:
        return self.totals().total_unique_patterns

    def get_pattern(self, name: str) -> PatternRecord | None:
        answer = self._call("GET", f"/pattern/PTRN|{name}", params={"node_id": self.node_id})["pattern"]
        if answer.get("status") != "okay":
            return None
        found = answer["pattern"]
        return PatternRecord(name, found["pattern_data"], found["length"], found["frequency"],
                             found.get("emotives") or [], found.get("metadata") or {})

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        found = {name: self.get_pattern(name) for name in names}
        return {name: record for name, record in found.items() if record is not None}

    def symbol_affinity(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        found = self._call("GET", "/symbols/affinity", params={"node_id": self.node_id})["affinities"]
        return found if symbols is None else {s: found[s] for s in dict.fromkeys(symbols) if s in found}

    def _not_offered(self, what: str):
        raise StoreError(f"{what} is not available from a KATO server through {self!r}: ask the server's own API "
                         "(sessions and predictions, GET /pattern/{id})")

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        self._not_offered("patterns_with_any")

    def patterns_starting_with(self, symbol: str) -> list[str]:
        self._not_offered("patterns_starting_with")

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        self._not_offered("symbol_pmf")

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        self._not_offered("symbol_frequencies")

    def iter_patterns(self) -> Iterator[PatternRecord]:
        self._not_offered("iter_patterns (listing every pattern)")

    def delete_patterns(self, names: Iterable[str]) -> int:
        self._not_offered("delete_patterns")

    def close(self) -> None:
        self._http.close()


def replay_observations(delta: PatternDelta, first: bool) -> list[dict[str, Any]]:
    """One learn of ``delta`` as KATO observations: metadata first, one value per key per
    observation without symbols (KATO would store a list value as its repr), then the events,
    the learn's emotive dicts on the first of them. Emotives and metadata go with the first
    learn only: the built-in store merges a delta's emotives once, and metadata is a union."""
    observations: list[dict[str, Any]] = []
    metadata = delta.metadata if first else {}
    for j in range(max(map(len, metadata.values()), default=0)):
        observations.append({"strings": [], "metadata": {k: v[j] for k, v in metadata.items() if j < len(v)}})
    emotives = list(delta.emotives) if first else []
    for i, event in enumerate(delta.events):
        observation: dict[str, Any] = {"strings": list(event)}
        if i < len(emotives):
            observation["emotives"] = emotives[i]
        observations.append(observation)
    observations += [{"strings": [], "emotives": e} for e in emotives[len(delta.events):]]
    return observations
