"""``probe_store(url)``: can this store URL serve? Answered without creating anything.

A server checks its store before it listens (an unreachable MongoDB used to be found only when
the first session timed out); opening a knowledge base would create a file, a database or an
index, so the probe asks the smallest question each backend has.
"""
from __future__ import annotations

import os

from katoray.errors import ConfigError, StoreError, StoreUnreachableError

PROBE_TIMEOUT_MS = 5000   # an unreachable MongoDB fails within this, naming the host


def probe_store(url: str) -> None:
    """Raise ``StoreUnreachableError``/``StoreError``/``ConfigError`` (saying what to do) unless
    ``url`` can serve knowledge bases."""
    from katoray.store import redact_url

    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store URL {url!r} is not a URL; use memory://, sqlite:///dir, mongodb:// or kato+http://")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        _probe_sqlite(url)
    elif scheme in ("mongodb", "mongodb+srv"):
        _probe_mongo(url, redact_url(url))
    elif scheme in ("kato+http", "kato+https"):
        from katoray.store.kato_http import KatoHttpStore

        KatoHttpStore(url, "probe_kato").close()   # one GET /
    elif scheme != "memory":
        raise ConfigError(f"unknown store scheme {scheme!r} in {redact_url(url)!r}; use memory://, sqlite:///, "
                          "mongodb:// or kato+http://")


def _probe_sqlite(url: str) -> None:
    from katoray.store.sqlite_file import sqlite_path

    folder = sqlite_path(url, "probe_kato").parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create the SQLite store folder {str(folder)!r} ({err.strerror}); point the store "
                         "URL at a writable directory") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"the SQLite store folder {str(folder)!r} is not writable; point the store URL at a "
                         "writable directory")


def _probe_mongo(url: str, shown: str) -> None:
    import pymongo
    from pymongo.errors import PyMongoError

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=PROBE_TIMEOUT_MS, connectTimeoutMS=PROBE_TIMEOUT_MS)
    try:
        client.admin.command("ping")
    except PyMongoError as err:
        raise StoreUnreachableError(f"MongoDB store {shown} did not answer within {PROBE_TIMEOUT_MS // 1000} s "
                                    f"({type(err).__name__}); start it or fix the host and port in the URL") from None
    finally:
        client.close()
