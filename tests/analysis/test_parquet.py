"""``export_run`` / ``import_run`` without Ray: records, emotives and metadata come back; an import
cut short finishes exactly when run again."""
from __future__ import annotations

import pytest

from katoray.errors import ConfigError
from katoray.jobs import fingerprint, load_manifest
from katoray.jobs import parquet
from katoray.jobs.parquet import _load_level, _write_level, export_run, import_run
from katoray.store.memory import MemoryStore
from katoray.store.sqlite import SqliteStore
from tests.store.test_congruence import ALPHABET, delta


def test_every_field_round_trips(tmp_path):
    source = MemoryStore("source")
    source.apply([delta([s], ["x"], [str(i)], count=1 + i % 3) for i, s in enumerate(ALPHABET)], "b1")
    source.apply([delta(["a"], ["b", "c"], emotives=[{"joy": 0.5, "fear": -1.25}, {"joy": 2.0}],
                        metadata={"book": ["t2", "t1"], "author": ["Smith"]})], "b2", persistence=3)
    fingerprint_of = _write_level(source, tmp_path / "node0.parquet")
    copy = SqliteStore(tmp_path / "copy.sqlite", "copy")
    _load_level(copy, tmp_path / "node0.parquet", "import-x")
    assert list(copy.iter_patterns()) == list(source.iter_patterns()) and copy.totals() == source.totals()
    assert fingerprint_of["patterns"] == source.count()
    symbols = ALPHABET + ["x", "a", "b", "c"]
    assert copy.symbol_pmf(symbols) == source.symbol_pmf(symbols)
    assert copy.symbol_frequencies(symbols) == source.symbol_frequencies(symbols)


def test_an_import_cut_short_finishes_exactly(learner_run, tmp_path, monkeypatch):
    manifest, _ = learner_run
    runs_dir = manifest.run_dir.parent
    export = export_run("small", tmp_path / "export", runs_dir)
    assert [level["file"] for level in export["levels"]] == ["node0.parquet", "node1.parquet"]
    monkeypatch.setattr(parquet, "IMPORT_BATCH", 500)
    applied = []
    real_apply = SqliteStore.apply

    def crash_after_two(self, deltas, batch_id=None, **kwargs):
        if len(applied) == 2:
            raise KeyboardInterrupt("the machine stopped")
        applied.append(batch_id)
        return real_apply(self, deltas, batch_id, **kwargs)

    monkeypatch.setattr(SqliteStore, "apply", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        import_run(tmp_path / "export", "copy", runs_dir=runs_dir)
    monkeypatch.setattr(SqliteStore, "apply", real_apply)
    imported = import_run(tmp_path / "export", "copy", runs_dir=runs_dir)   # again: the two batches are skipped
    assert fingerprint("copy", runs_dir) == fingerprint("small", runs_dir)
    assert imported.attempts[-1]["kind"] == "import" and imported.attempts[-1]["source_run_id"] == "small"
    assert load_manifest("copy", runs_dir).statistics == manifest.statistics
    with pytest.raises(ConfigError, match="already exists"):
        import_run(tmp_path / "export", "copy", runs_dir=runs_dir)


def test_a_store_holding_other_patterns_is_refused(learner_run, tmp_path):
    manifest, learner = learner_run
    export_run("small", tmp_path / "export", manifest.run_dir.parent)
    taken = SqliteStore(tmp_path / "kb" / "node0_other_kato.sqlite", "node0_other_kato")
    taken.apply([delta(["a"], ["b"])], "elsewhere")
    taken.close()
    with pytest.raises(ConfigError, match="already holds 1 patterns that are not from this import"):
        import_run(tmp_path / "export", "other", store=f"sqlite:///{tmp_path / 'kb'}", runs_dir=tmp_path / "runs")
