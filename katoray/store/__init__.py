"""Knowledge-base backends behind one protocol, chosen by URL.

- ``memory://`` a private in-process KB; ``memory://<name>`` shared within the process by name.
- ``sqlite:///path/file.sqlite`` one KB in that file; ``sqlite:///path/dir`` one file per KB
  (``<dir>/<kb_id>.sqlite``). The embedded default.
- ``mongodb://host:port/...`` KATO's MongoDB-era layout (database ``<kb_id>``, collection
  ``patterns_kb``).
- ``kato+http://host:port`` a KATO server's node (``katoray serve``: exactly-once bulk writes;
  KATO itself: replayed learns, at least once); for training nodes with a ``base_url``.
"""
from __future__ import annotations

import re

from katoray.errors import ConfigError
from katoray.store.base import KBTotals, KnowledgeBase, PatternDelta, PatternRecord
from katoray.store.urls import redact_url, scheme

__all__ = ["open_store", "kb_id_for", "redact_url", "KnowledgeBase", "PatternDelta", "PatternRecord", "KBTotals"]

_UNSAFE = re.compile(r'[/\\. "$*<>:|?\-]')


def kb_id_for(node_id: str, service: str = "kato") -> str:
    """KATO's knowledge-base id for a node: sanitised node id + ``_`` + service (``node0_kato``)."""
    import hashlib

    safe_node = _UNSAFE.sub("_", node_id)
    safe_service = service.replace("-", "_")
    kb_id = f"{safe_node}_{safe_service}"
    if len(kb_id) > 60:  # KATO's truncation rule keeps MongoDB database names legal
        digest = hashlib.md5(safe_node.encode()).hexdigest()[:8]
        kb_id = f"{safe_node[:60 - len(safe_service) - 10]}_{digest}_{safe_service}"
    return kb_id


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

        if kb_id_for(kb_id.removesuffix("_kato")) != kb_id:
            raise ConfigError(f"knowledge base {kb_id!r} is not a KATO node's (<node>_kato): a KATO server names "
                              "knowledge bases after their node")
        return KatoHttpStore(url, kb_id)
    raise ConfigError(f"unknown store scheme {kind!r} in {redact_url(url)!r}; use memory://, sqlite:///, "
                      "mongodb:// or kato+http://")
