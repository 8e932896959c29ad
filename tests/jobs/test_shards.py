"""Sharded training: a level split in N knowledge bases, each with its own node actor, holds
exactly the unsharded run's patterns, whatever N, and a resume or a shard actor killed mid-run
changes nothing.

Real Ray (the session's), GPT-2, ten KJV books, SQLite shards. ``fingerprint`` merges a level's
shards (a sha256 over every pattern's name and frequency), so equal fingerprints mean the same
knowledge base pattern by pattern.
"""
from __future__ import annotations

import os
import signal

import pytest

from katoray.jobs import Checkpoint, TrainConfig, TrainingManifest, fingerprint, resume_run, start_run
from katoray.jobs.runs import delete_run
from katoray.store.sharded import ShardedStore, shard_of
from tests.jobs import GPT2, counted, reference_fingerprint

CHUNKS = (4, 3, 3, 3)


def config(runs_dir, run_id: str, corpus, **values) -> TrainConfig:
    values = {"workers": 1, "batch_size": 1, "checkpoint_interval": 2, **values}
    return TrainConfig(data=str(corpus), tokenizer=str(GPT2), chunk_sizes=CHUNKS, runs_dir=str(runs_dir),
                       run_id=run_id, verbose=False, **values)


@pytest.fixture(scope="module")
def unsharded(ten_books, tmp_path_factory):
    """The reference: the same corpus, one knowledge base per level (fingerprint, statistics)."""
    runs_dir = tmp_path_factory.mktemp("unsharded")
    stats = start_run(config(runs_dir, "one", ten_books))
    return fingerprint("one", runs_dir), stats, runs_dir


@pytest.mark.ray
def test_the_notebook_function_trains_sharded_levels(ray_session, ten_books, unsharded, tmp_path):
    """kato-lm's name takes ``shards`` and ``first_batch_chars`` as the CLI and TrainConfig do."""
    from katoray import HierarchicalNode, train_from_streaming_dataset_parallel

    expected, reference, _ = unsharded
    nodes = [HierarchicalNode(f"node{level}", chunk_size=size) for level, size in enumerate(CHUNKS)]
    stats = train_from_streaming_dataset_parallel(data=str(ten_books), nodes=nodes, tokenizer=str(GPT2),
                                                  num_workers=1, run_id="notebook", verbose=False,
                                                  checkpoint_dir=str(tmp_path), shards=(2, 1, 1, 1),
                                                  first_batch_chars=None)
    assert fingerprint("notebook", tmp_path) == expected
    batching = ("batches_processed",)   # whole batches here, one document per batch in the reference
    assert {k: v for k, v in counted(stats).items() if k not in batching} == \
        {k: v for k, v in counted(reference).items() if k not in batching}
    assert stats["node0_shards"] == 2
    manifest = TrainingManifest.load(tmp_path / "notebook")
    assert manifest.config["shards"] == [2, 1, 1, 1] and manifest.config["first_batch_chars"] is None


@pytest.mark.ray
@pytest.mark.parametrize("shards", [3, (3, 2, 1, 1)], ids=["3", "3-2-1-1"])
def test_sharded_runs_equal_the_unsharded_run(ray_session, ten_books, unsharded, tmp_path, shards):
    expected, reference, one_dir = unsharded
    stats = start_run(config(tmp_path, "sharded", ten_books, shards=shards))
    assert fingerprint("sharded", tmp_path) == expected
    assert counted(stats) == counted(reference)           # learns, new patterns, unlearned symbols, reuse
    counts = (shards,) * 4 if isinstance(shards, int) else shards
    manifest = TrainingManifest.load(tmp_path / "sharded")
    assert manifest.config["shards"] == (shards if isinstance(shards, int) else list(shards))
    for level, count in enumerate(counts):
        node = manifest.nodes[f"node{level}"]
        if count == 1:
            assert node["kb_id"] == f"node{level}_sharded_kato" and "kb_ids" not in node
        else:
            assert node["kb_ids"] == [f"node{level}s{s}_sharded_kato" for s in range(count)]
            assert stats[f"node{level}_shards"] == count
    files = sorted(p.name for p in (tmp_path / "sharded" / "kb").glob("*.sqlite"))
    assert len(files) == sum(counts) and "node0s2_sharded_kato.sqlite" in files
    # each shard holds only its own patterns, and every shard got a share
    level0 = manifest.open_stores()["node0"]
    assert isinstance(level0, ShardedStore)
    for shard, kb in enumerate(level0.shards):
        names = [record.name for record in kb.iter_patterns()]
        assert names and all(shard_of(name, 3) == shard for name in names)
    level0.close()
    # the unsharded run's files are named as ever: no shard suffix
    assert sorted(p.name for p in (one_dir / "one" / "kb").glob("*.sqlite")) == [
        f"node{i}_one_kato.sqlite" for i in range(4)]
    _serve_answers_as_unsharded(tmp_path, one_dir)
    _export_then_import_unshards(tmp_path, expected)
    assert delete_run("sharded", tmp_path, confirm=False)["files"] == []   # the shard files go with the run folder
    assert not (tmp_path / "sharded").exists()


@pytest.mark.ray
def test_an_interrupted_sharded_run_resumes_to_the_unsharded_result(ray_session, ten_books, unsharded, tmp_path,
                                                                     monkeypatch):
    """Ctrl-C at the second checkpoint, while the pool still has batches in flight; the resume
    skips what the checkpoint holds, re-sends the rest, and every shard's ledger takes each
    batch once."""
    expected, reference, _ = unsharded
    save = Checkpoint.save
    saves = []

    def interrupted_save(self, run_dir):
        saves.append(len(self.completed))
        if len(saves) == 2:
            raise KeyboardInterrupt
        return save(self, run_dir)

    monkeypatch.setattr(Checkpoint, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        start_run(config(tmp_path, "cut", ten_books, shards=(3, 2, 1, 1)))
    monkeypatch.setattr(Checkpoint, "save", save)
    assert TrainingManifest.load(tmp_path / "cut").status == "failed"
    assert 0 < len(Checkpoint.load(tmp_path / "cut").completed) < reference["batches_processed"]
    stats = resume_run("cut", tmp_path)
    assert stats["status"] == "finished" and stats["attempts"] == 2
    assert fingerprint("cut", tmp_path) == expected
    assert stats["samples_processed"] == reference["samples_processed"]


@pytest.mark.ray
def test_a_shard_actor_killed_mid_run_loses_nothing(ray_session, ten_books, unsharded, tmp_path, monkeypatch):
    """SIGKILL of node0's shard 1 at the first checkpoint, with batches in flight: Ray restarts it
    (its constructor reopens its SQLite file), the mappers' calls to it are retried, and the batch
    ids it already holds are recognised."""
    import ray

    from katoray.runtime.options import namespace_for, node_actor_name

    expected, reference, _ = unsharded
    save = Checkpoint.save
    killed = []

    def save_then_kill(self, run_dir):
        save(self, run_dir)
        if not killed:
            actor = ray.get_actor(node_actor_name(0, 1, 3), namespace=namespace_for("killed"))
            killed.append(ray.get(actor.ready.remote())["pid"])
            os.kill(killed[0], signal.SIGKILL)

    monkeypatch.setattr(Checkpoint, "save", save_then_kill)
    stats = start_run(config(tmp_path, "killed", ten_books, shards=3))
    assert killed and stats["status"] == "finished" and stats["attempts"] == 1
    assert fingerprint("killed", tmp_path) == expected
    assert stats["samples_processed"] == reference["samples_processed"]


@pytest.mark.ray
@pytest.mark.mongo
def test_sharded_levels_on_mongodb_are_one_database_per_shard(ray_session, ten_books, tmp_path, tmp_path_factory,
                                                              mongo_uri):
    import pymongo

    few = {"max_samples": 3, "workers": 1, "batch_size": 1}   # the in-process MongoDB server is slow
    expected = reference_fingerprint(tmp_path_factory, data=str(ten_books), tokenizer=str(GPT2), chunk_sizes=CHUNKS,
                                     **few)
    stats = start_run(config(tmp_path, "mongo-shards", ten_books, shards=(2, 2, 1, 1), store=mongo_uri, **few))
    client = pymongo.MongoClient(mongo_uri)
    try:
        assert stats["status"] == "finished"
        assert fingerprint("mongo-shards", tmp_path, mongo_uri) == expected
        names = sorted(n for n in client.list_database_names() if n.endswith("_mongo-shards_kato"))
        assert names == ["node0s0_mongo-shards_kato", "node0s1_mongo-shards_kato", "node1s0_mongo-shards_kato",
                         "node1s1_mongo-shards_kato", "node2_mongo-shards_kato", "node3_mongo-shards_kato"]
    finally:
        delete_run("mongo-shards", tmp_path, mongo_uri, confirm=False)
        assert not [n for n in client.list_database_names() if n.endswith("_mongo-shards_kato")]
        client.close()


def _serve_answers_as_unsharded(sharded_dir, one_dir) -> None:
    """``katoray serve --run``: a sharded level is served as one knowledge base, with the
    unsharded run's predictions."""
    from katoray.api.server.runs import run_nodes
    from katoray.api.server.service import KatoService
    from katoray.api.session import KatoSession

    answers = []
    for run_id, runs_dir in (("sharded", sharded_dir), ("one", one_dir)):
        service = KatoService(nodes=run_nodes(run_id, runs_dir))
        session = KatoSession("node0", service.kb("node0"))
        for piece in ["ĠAnd", "Ġthe", "ĠLORD", "Ġsaid"]:
            session.observe(strings=[piece])
        answers.append(session.get_predictions())
        service.close()
    assert answers[0] == answers[1] and answers[0]


def _export_then_import_unshards(runs_dir, expected) -> None:
    """``katoray export`` of a sharded run, ``katoray import`` of it: one knowledge base per level,
    the same fingerprint, and a manifest that says so."""
    from katoray.jobs.parquet import export_run, import_run

    export_run("sharded", runs_dir / "export", runs_dir)
    imported = import_run(runs_dir / "export", "joined", runs_dir=runs_dir)
    assert imported.config["shards"] == 1 and all("kb_ids" not in node for node in imported.nodes.values())
    assert fingerprint("joined", runs_dir) == expected
