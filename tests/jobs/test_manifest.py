"""Manifests, checkpoints, configs and the run registry.

One real run (GPT-2, short KJV books, the session's Ray) pins what a manifest records; the rest
needs no Ray: config validation, the compact checkpoint form, a password never written, and the
notebook's run-management names (with MongoDB databases on SecantusDB).
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest

import katoray
from katoray.errors import ConfigError
from katoray.compat.nodes import create_training_run_nodes
from katoray.compat.runs import delete_training_run, list_all_training_runs, load_latest_manifest
from katoray.jobs import Checkpoint, RunNotFoundError, TrainConfig, TrainingManifest, fingerprint, start_run
from katoray.jobs.checkpoint import combine_statistics, compress_batch_ids, expand_batch_ids, write_json_atomic
from katoray.jobs.manifest import data_identity, usable_store_url, versions
from katoray.jobs.runs import RunBusyError, RunLock, fingerprint_kb
from katoray.store import open_store, run_kb_id
from katoray.store.base import PatternDelta
from tests.jobs import GPT2, corpus

BOOKS_UNDER = 20_000     # 29 KJV books, ~70k GPT-2 tokens


@pytest.fixture(scope="module")
def books(tmp_path_factory, kjv_books_path):
    return corpus(tmp_path_factory, kjv_books_path, BOOKS_UNDER)


@pytest.fixture(scope="module")
def trained(ray_session, books, tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    stats = start_run(TrainConfig(data=str(books), tokenizer=str(GPT2), run_id="manifest-run", runs_dir=str(runs_dir),
                                  batch_size=4, checkpoint_interval=10, verbose=False))
    return runs_dir, stats


# -- what a real run records ---------------------------------------------------------------------
@pytest.mark.ray
def test_manifest_records_config_identities_counts_and_timings(trained, books):
    from katoray.text.tokenizers import load_tokenizer

    runs_dir, stats = trained
    manifest = load_latest_manifest(runs_dir)
    assert manifest.run_id == stats["run_id"] == "manifest-run" and manifest.status == "finished"
    assert manifest.run_dir == runs_dir / "manifest-run"
    config = manifest.config
    assert (config["levels"], config["chunk_sizes"], config["mode"], config["segment_method"]) == (4, [8] * 4, "chunking",
                                                                                                 "simple")
    assert config["tokenizer"] == str(GPT2) and config["data"] == str(books) and config["dataset"] is None
    assert (config["batch_size"], config["checkpoint_interval"], config["metadata_cap"]) == (4, 10, 16)
    assert config["store"] == f"sqlite:///{runs_dir}/manifest-run/kb"
    assert manifest.versions == {"katoray": katoray.__version__, **{k: versions()[k] for k in ("python", "ray")}}
    gpt2 = load_tokenizer(str(GPT2)).identity()
    assert manifest.tokenizer["vocab_sha256"] == gpt2["vocab_sha256"] and manifest.tokenizer["vocab_size"] == 50257
    file, = manifest.data["files"]
    assert file == {"path": books.name, "bytes": books.stat().st_size,
                    "sha256": hashlib.sha256(books.read_bytes()).hexdigest()}
    assert manifest.documents == stats["samples_processed"] == 29
    assert manifest.tokens == stats["tokens_processed"] > 60_000
    assert manifest.started <= manifest.attempts[0]["started"] <= manifest.finished <= manifest.updated
    assert [a["outcome"] for a in manifest.attempts] == ["finished"]
    assert manifest.nodes["node2"] == {"node_id": "node2_manifest-run", "kb_id": "node2_manifest-run_kato",
                                       "chunk_size": 8, "mode": "chunking"}
    assert manifest.statistics["node0_patterns"] == stats["node0_patterns"] > 0
    assert sorted(p.name for p in (runs_dir / "manifest-run" / "kb").glob("*.sqlite")) == [
        f"node{i}_manifest-run_kato.sqlite" for i in range(4)]


@pytest.mark.ray
def test_checkpoint_lists_every_batch_compactly(trained):
    runs_dir, stats = trained
    raw = json.loads((runs_dir / "manifest-run" / "checkpoint.json").read_text())
    assert raw["completed_batches"] == {"s00000": [[0, 7]]} and raw["num_completed_batches"] == 8   # 29 books / 4
    checkpoint = Checkpoint.load(runs_dir / "manifest-run")
    assert checkpoint.statistics["samples_processed"] == 29
    assert checkpoint.completed == {f"s00000-b{i:08d}" for i in range(8)}


@pytest.mark.ray
def test_analyzers_and_fingerprint_read_the_stores_without_a_session(trained):
    runs_dir, stats = trained
    manifest = TrainingManifest.load(runs_dir / "manifest-run" / "manifest.json")
    analyzers = manifest.get_analyzers()
    assert list(analyzers) == ["node0", "node1", "node2", "node3"]
    prints = fingerprint("manifest-run", runs_dir)
    for i, (name, analyzer) in enumerate(analyzers.items()):
        analysis = analyzer.get_stats()
        assert analysis["total_patterns"] == stats[f"node{i}_patterns"] == prints[name]["patterns"]
        assert analysis["total_frequency"] == prints[name]["total_frequency"]
        analyzer.kb.close()
    assert prints["node0"]["total_frequency"] > prints["node0"]["patterns"]   # KJV repeats itself
    assert len({p["sha256"] for p in prints.values()}) == 4


# -- configs -----------------------------------------------------------------------------------------
def test_config_normalises_paths_and_hierarchy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(chunk_sizes=(5,), levels=3, data="books.jsonl", store="sqlite:///kb", runs_dir="r")
    assert config.chunk_sizes == (5, 5, 5) and config.levels == 3
    assert config.data == str(tmp_path / "books.jsonl") and config.runs_dir == str(tmp_path / "r")
    assert config.store == f"sqlite:///{tmp_path}/kb"
    assert TrainConfig(chunk_sizes=[4, 3]).levels == 2
    default = TrainConfig().for_run("r1")
    assert (default.dataset, default.levels, default.chunk_sizes, default.tokenizer) == ("pydoc", 4, (8,) * 4, None)
    assert default.store == f"sqlite:///{tmp_path}/runs/r1/kb" and default.run_dir == tmp_path / "runs" / "r1"
    assert TrainConfig.from_dict(default.to_dict()) == default
    (tmp_path / "books.jsonl").write_text("{}")
    as_key = TrainConfig(dataset="books.jsonl")           # a local file where a dataset key goes (spelt as a path)
    assert (as_key.data, as_key.dataset) == (str(tmp_path / "books.jsonl"), None)


@pytest.mark.parametrize("values, message", [
    ({"chunk_sizes": (8, 1)}, "node1: chunk_size must be an integer >= 2"),
    ({"levels": 3, "chunk_sizes": (8, 8)}, "chunk_sizes has 2 values .* but levels is 3"),
    ({"levels": 0}, "levels must be an integer >= 1"),
    ({"mode": "sentences"}, "mode must be one of"),
    ({"segment_method": "chapter"}, "segment_method must be one of"),
    ({"data": "a", "dataset": "wikitext"}, "one corpus"),
    ({"store": "memory://"}, "memory:// lives and dies with one process"),
    ({"store": "kb"}, "is not a URL"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"max_samples": -1}, "max_samples must be an integer >= 0"),
    ({"workers": 0}, "workers must be an integer >= 1"),
    ({"run_id": "a/b"}, "run id must be a non-empty name without slashes"),
    ({"text_field": ""}, "text_field"),
])
def test_bad_configs_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_structural_differences_are_listed_field_by_field():
    run = TrainConfig(chunk_sizes=(8, 8, 8, 8), tokenizer="gpt2").for_run("r")
    now = TrainConfig(chunk_sizes=(4, 4, 4), mode="structure", workers=1).for_run("r")
    assert run.structural_differences(now) == [
        "levels: run had 4, now 3", "chunk_sizes: run had [8, 8, 8, 8], now [4, 4, 4]",
        "mode: run had 'chunking', now 'structure'", "tokenizer: run had 'gpt2', now None"]


# -- passwords -----------------------------------------------------------------------------------
def test_manifest_never_holds_the_store_password(tmp_path):
    """A manifest built from a config with a password in its store URL (no server contacted)."""
    config = TrainConfig(store="mongodb://kato:s3cret-pw@127.0.0.1:1/", runs_dir=str(tmp_path)).for_run("pw")
    manifest = TrainingManifest("pw", config.to_dict(), {"node0": {"node_id": "node0_pw", "kb_id": "node0_pw_kato"}},
                                {"name": "katoray-bytes"}, {"kind": "pydoc"})
    path = manifest.save(config.run_dir)
    text = path.read_text()
    assert "s3cret-pw" not in text and '"store": "mongodb://kato:***@127.0.0.1:1/"' in text
    assert TrainingManifest.load(path) == manifest
    with pytest.raises(ConfigError, match="needs its password"):
        manifest.get_analyzers()
    assert usable_store_url(manifest.store, "mongodb://kato:other@127.0.0.1:1/") == "mongodb://kato:other@127.0.0.1:1/"
    with pytest.raises(ConfigError, match="is not this run's store"):
        usable_store_url(manifest.store, "mongodb://kato:s3cret-pw@elsewhere:1/")


# -- checkpoints ------------------------------------------------------------------------------------
def test_batch_ids_round_trip_compactly():
    ids = {f"s00000-b{i:08d}" for i in [0, 1, 2, 3, 7, 9, 10]} | {"s00012-b00000004", "custom-id"}
    compact = compress_batch_ids(ids)
    assert compact == {"s00000": [[0, 3], [7, 7], [9, 10]], "s00012": [[4, 4]], "other": ["custom-id"]}
    assert expand_batch_ids(compact) == ids
    assert compress_batch_ids([]) == {} and expand_batch_ids({}) == frozenset()


def test_statistics_add_across_attempts():
    first = {"samples_processed": 10, "tokens_processed": 500, "total_time_seconds": 2.0, "node0_observations": 60,
             "node0_new_patterns": 50, "node0_unlearned": 1}
    second = {"samples_processed": 5, "tokens_processed": 300, "total_time_seconds": 2.0, "node0_observations": 40,
              "node0_new_patterns": 20, "node0_unlearned": 2, "node0_patterns": 70, "workers_used": 2}
    total = combine_statistics(first, second)
    assert (total["samples_processed"], total["tokens_processed"], total["node0_observations"]) == (15, 800, 100)
    assert total["node0_reuse_rate"] == pytest.approx(0.3) and total["rate_tokens_per_sec"] == 200
    assert (total["node0_patterns"], total["workers_used"]) == (70, 2)   # properties of the latest attempt


def test_atomic_writes_leave_one_complete_file(tmp_path):
    path = tmp_path / "deep" / "checkpoint.json"
    for i in range(3):
        write_json_atomic(path, {"i": i, "ids": {"b"}})
    assert json.loads(path.read_text()) == {"i": 2, "ids": ["b"]}
    assert os.listdir(path.parent) == ["checkpoint.json"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the registry and the notebook's names ----------------------------------------------------------
def _manifest(runs_dir, run_id, store=None) -> TrainingManifest:
    """A run as start_run records it before training (a run killed before its first checkpoint)."""
    config = TrainConfig(runs_dir=str(runs_dir), store=store).for_run(run_id)
    nodes = {f"node{i}": {"node_id": f"node{i}_{run_id}", "kb_id": run_kb_id(i, run_id)} for i in range(4)}
    manifest = TrainingManifest(run_id, config.to_dict(), nodes, {"name": "katoray-bytes"}, data_identity(None, "pydoc"))
    manifest.save(config.run_dir)
    return manifest


def test_latest_manifest_is_the_latest_started(tmp_path):
    with pytest.raises(RunNotFoundError, match="no runs in"):
        load_latest_manifest(tmp_path)
    for run_id, started in [("zzz", "2026-01-01T00:00:00.000Z"), ("aaa", "2026-02-01T00:00:00.000Z")]:
        manifest = _manifest(tmp_path, run_id)
        manifest.started = started
        manifest.save()
    assert load_latest_manifest(tmp_path).run_id == "aaa"       # by start time, not by name
    assert list(list_all_training_runs(tmp_path)) == ["zzz", "aaa"]


def test_training_run_nodes_isolate_the_learner(tmp_path):
    from katoray.compat.learner import HierarchicalConceptLearner

    nodes = create_training_run_nodes(run_id="baseline_8chunks", num_nodes=3, chunk_size=5)
    assert [(n.name, n.chunk_size, n.mode) for n in nodes] == [(f"node{i}", 5, "chunking") for i in range(3)]
    assert nodes.run_id == "baseline_8chunks" and isinstance(nodes, list)
    learner = HierarchicalConceptLearner(nodes=nodes, run_id=nodes.run_id, store=f"sqlite:///{tmp_path}")
    assert [kb.kb_id for kb in learner.kbs] == [f"node{i}_baseline_8chunks_kato" for i in range(3)]
    learner.close()
    assert create_training_run_nodes().run_id != create_training_run_nodes().run_id
    with pytest.raises(ConfigError, match="run id"):
        create_training_run_nodes(run_id="a b")


def test_delete_asks_only_where_someone_can_answer(tmp_path):
    _manifest(tmp_path, "doomed")
    with pytest.raises(ConfigError, match="stdin is not a terminal.*--yes"):    # pytest's stdin is no terminal
        delete_training_run("doomed", tmp_path)
    assert (tmp_path / "doomed" / "manifest.json").exists()
    with RunLock(tmp_path / "doomed"):
        with pytest.raises(RunBusyError, match="being trained right now"):
            delete_training_run("doomed", tmp_path, confirm=False)
    done = delete_training_run("doomed", tmp_path, confirm=False)
    assert done["deleted"] and not (tmp_path / "doomed").exists()
    with pytest.raises(RunNotFoundError):
        delete_training_run("doomed", tmp_path, confirm=False)


def test_delete_removes_knowledge_bases_kept_outside_the_run_folder(tmp_path):
    elsewhere = tmp_path / "shared-kb"
    manifest = _manifest(tmp_path / "runs", "ext", store=f"sqlite:///{elsewhere}")
    for node in manifest.nodes.values():
        kb = open_store(manifest.store, node["kb_id"])
        kb.apply([PatternDelta("a" * 40, [["x"], ["y"]])], "b1")
        kb.close()
    open_store(manifest.store, "another_run_kato").close()
    assert len(list(elsewhere.glob("*.sqlite"))) == 5
    done = delete_training_run("ext", tmp_path / "runs", confirm=False)
    assert sorted(Path(f).name for f in done["files"] if f.endswith(".sqlite")) == [
        f"node{i}_ext_kato.sqlite" for i in range(4)]
    assert [p.name for p in elsewhere.glob("*.sqlite")] == ["another_run_kato.sqlite"]   # not this run's: kept
    assert not (tmp_path / "runs" / "ext").exists()


@pytest.mark.mongo
def test_mongodb_runs_are_grouped_by_their_run_id(tmp_path, mongo_uri):
    """kato-lm grouped default databases under 'unknown' (B20); here each goes to its own run."""
    tag = uuid.uuid4().hex[:6]
    with_manifest, orphan = f"m-{tag}", f"o_{tag}"
    _manifest(tmp_path, with_manifest, store=mongo_uri)
    delta = PatternDelta("a" * 40, [["x"], ["y"]])
    names = [run_kb_id(i, run) for run in (with_manifest, orphan) for i in range(2)] + ["node0_kato"]
    for name in names:
        kb = open_store(mongo_uri, name)
        kb.apply([delta], "b1")
        kb.close()
    try:
        runs = list_all_training_runs(tmp_path, mongo_uri)
        assert runs[with_manifest]["databases"] == [f"node0_m-{tag}_kato", f"node1_m-{tag}_kato"]
        assert runs[orphan] == {"run_id": orphan, "status": "no manifest",
                                "databases": [f"node0_{orphan}_kato", f"node1_{orphan}_kato"]}
        assert "node0_kato" in runs[None]["databases"]
        assert fingerprint_kb(open_store(mongo_uri, names[0]))["total_frequency"] == 1
        done = delete_training_run(orphan, tmp_path, mongo_uri, confirm=False)
        assert done["deleted"] and done["run_dir"] is None and done["databases"] == names[2:4]
        done = delete_training_run(with_manifest, tmp_path, mongo_uri, confirm=False)
        assert done["databases"] == names[:2] and not (tmp_path / with_manifest).exists()
        assert not {orphan, with_manifest} & set(list_all_training_runs(tmp_path, mongo_uri))
    finally:
        import pymongo

        client = pymongo.MongoClient(mongo_uri)
        for name in names:
            client.drop_database(name)
        client.close()
