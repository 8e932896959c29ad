"""``probe_store``: whether a store URL can serve, asked without creating anything."""
from __future__ import annotations

import pytest

from katoray.errors import ConfigError, StoreError, StoreUnreachableError
from katoray.store.probe import probe_store


def test_a_usable_store_passes_and_nothing_is_created(tmp_path, mongo_uri):
    probe_store("memory://anything")
    probe_store(f"sqlite:///{tmp_path}/kb")
    probe_store(mongo_uri)
    assert [p.name for p in tmp_path.iterdir()] == ["kb"] and not any((tmp_path / "kb").iterdir())


def test_an_unusable_store_is_named(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the SQLite store folder"):
        probe_store(f"sqlite:///{tmp_path}/file/kb")
    with pytest.raises(StoreUnreachableError, match="unreachable"):
        probe_store("kato+http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="unknown store scheme"):
        probe_store("redis://localhost")
