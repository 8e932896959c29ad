"""Knowledge-base backends behind one protocol, chosen by URL.

- ``memory://`` a private in-process KB; ``memory://<name>`` shared within the process by name.
- ``sqlite:///path/file.sqlite`` one KB in that file; ``sqlite:///path/dir`` one file per KB
  (``<dir>/<kb_id>.sqlite``). The embedded default.
- ``mongodb://host:port/...`` KATO's MongoDB-era layout (database ``<kb_id>``, collection
  ``patterns_kb``).
- ``kato+http://host:port`` a KATO server's node (``katoray serve``: exactly-once bulk writes;
  KATO itself: replayed learns, at least once); for training nodes with a ``base_url``.

A level split in shards is one KB per shard at the same URL, read as one by
``katoray.store.sharded.ShardedStore`` (``open_level(url, kb_ids)``).
"""
from __future__ import annotations

from katoray.errors import ConfigError
from katoray.store.base import KBTotals, KnowledgeBase, PatternDelta, PatternRecord
from katoray.store.naming import kb_id_for, run_kb_id
from katoray.store.urls import redact_url, scheme

__all__ = ["open_store", "kb_id_for", "run_kb_id", "redact_url", "KnowledgeBase", "PatternDelta", "PatternRecord", "KBTotals"]

def open_store(url: str, kb_id: str) -> KnowledgeBase:
    """Open (creating if needed) the knowledge base ``kb_id`` at ``url``."""
    kind = scheme(url)
    if kind == "memory":
        from katoray.store.memory import open_memory_store

        return open_memory_store(url.split("://", 1)[1].strip("/"), kb_id)
    if kind == "sqlite":
        from katoray.store.sqlite import SqliteStore

        return SqliteStore.from_url(url, kb_id)
    if kind in ("mongodb", "mongodb+srv"):
        from katoray.store.mongo import MongoStore

        return MongoStore.from_url(url, kb_id)
    if kind in ("kato+http", "kato+https"):
        from katoray.store.kato_http import KatoHttpStore

        return KatoHttpStore(url, kb_id)
    raise ConfigError(f"unknown store scheme {kind!r} in {redact_url(url)!r}; use memory://, sqlite:///, "
                      "mongodb:// or kato+http://")
