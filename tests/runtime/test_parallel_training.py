"""Parallel training on Ray equals the sequential map, whatever the workers, batches or resumes.

Real Ray (the session's local instance), the real GPT-2 tokenizer, real KJV text (ten short
books in three files: two jsonl, one txt), SQLite stores under tmp_path. The reference applies
``HierarchyDeltas`` of all documents, in order, to fresh in-memory stores. Training goes the way
every run goes: ``TrainConfig`` -> ``RunSpec`` -> ``runtime.run_training``; the notebook's
functions are checked at the end, over the same path.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from katoray.errors import ConfigError, DocumentError
from katoray.compat.nodes import HierarchicalNode, hierarchy_of
from katoray.hierarchy.mapping import HierarchyDeltas
from katoray.hierarchy.prepare import DocumentPreparer
from katoray.compat.notebook import train_from_streaming_dataset, train_from_streaming_dataset_parallel
from katoray.config import Batching, TrainConfig, new_run_id
from katoray.runspec import RunSpec
from katoray.runtime import run_training
from katoray.text.shards import iter_batches, plan_shards
from katoray.store import open_store, run_kb_id
from katoray.store.memory import MemoryStore
from katoray.text.corpora import CorpusError, DatasetUnavailableError, iter_local_documents
from katoray.text.segment import Document

CHUNKS = (4, 3, 3, 3)
METADATA_CAP = 2    # small, so the cap's order-independence is exercised across workers


@pytest.fixture(scope="module")
def corpus(ten_books) -> Path:
    return ten_books


def nodes(mode: str = "chunking") -> list[HierarchicalNode]:
    return [HierarchicalNode(f"node{i}", chunk_size=size, mode=mode) for i, size in enumerate(CHUNKS)]


@pytest.fixture(scope="module")
def preparers(gpt2_dir):
    cache = {}

    def get(segment_method: str, mode: str) -> DocumentPreparer:
        if (segment_method, mode) not in cache:
            cache[segment_method, mode] = DocumentPreparer(str(gpt2_dir), segment_method, mode)
        return cache[segment_method, mode]
    return get


def reference(docs, preparer: DocumentPreparer, mode: str = "chunking"):
    """Sequential map of every document into fresh memory stores; returns (kbs, deltas)."""
    config = hierarchy_of(nodes(mode), metadata_cap=METADATA_CAP)
    acc = HierarchyDeltas(config)
    for doc in preparer.prepare(list(docs)):
        acc.add(doc)
    kbs = [MemoryStore(f"node{i}") for i in range(config.num_levels)]
    for kb, level in zip(kbs, acc.levels):
        kb.apply(level.to_deltas(), metadata_cap=METADATA_CAP)
    return kbs, acc


def state(kb) -> tuple[list, object]:
    return list(kb.iter_patterns()), kb.totals()


def trained_kbs(store: str, run_id: str, levels: int = len(CHUNKS)) -> list:
    return [open_store(store, run_kb_id(i, run_id)) for i in range(levels)]


def assert_same_kbs(store: str, run_id: str, ref_kbs) -> None:
    for level, (got, want) in enumerate(zip(trained_kbs(store, run_id), ref_kbs)):
        assert state(got) == state(want), f"node{level} differs from the sequential reference"


def assert_real_stats(stats: dict, ref_kbs, acc: HierarchyDeltas) -> None:
    assert stats["samples_processed"] == acc.documents
    assert stats["tokens_processed"] == acc.tokens
    for i, (kb, level) in enumerate(zip(ref_kbs, acc.levels)):
        assert stats[f"node{i}_patterns"] == kb.count()
        assert stats[f"node{i}_observations"] == level.learned
        assert stats[f"node{i}_unlearned"] == level.unlearned
        assert stats[f"node{i}_reuse_rate"] == pytest.approx(1 - kb.count() / level.learned if level.learned else 0)
    assert stats["node0_patterns"] > 0
    assert stats["rate_tokens_per_sec"] == pytest.approx(stats["tokens_processed"] / stats["total_time_seconds"])


def assert_usage(stats: dict, levels: int) -> None:
    """Every role reported its CPU and peak memory (each is a Python process holding numpy and
    a tokenizer or a store: well over 20 MiB)."""
    for role in ["driver", "mapper", *(f"node{i}" for i in range(levels))]:
        assert stats[f"{role}_cpu_seconds"] > 0 and stats[f"{role}_peak_rss_mb"] > 20, role


def train(corpus, gpt2_dir, store, *, run_id: str | None = None, mode: str = "chunking", documents=None,
          max_samples: int | None = None, on_checkpoint=None, skip_batches=(), keep_nodes: bool = False,
          **config) -> dict:
    """``run_training`` of a run of ``CHUNKS`` over ``corpus`` (or a list of ``documents``)."""
    config = TrainConfig(levels=len(CHUNKS), chunk_sizes=CHUNKS, mode=mode, tokenizer=str(gpt2_dir),
                         data=None if corpus is None else str(corpus), max_samples=max_samples, store=store,
                         metadata_cap=METADATA_CAP, verbose=False, **config).for_run(run_id or new_run_id())
    shards = plan_shards(documents if documents is not None else config.data, None, config.text_field, max_samples)
    return run_training(RunSpec.from_config(config), shards, on_checkpoint=on_checkpoint, skip_batches=skip_batches,
                        keep_nodes=keep_nodes)


# -- the same knowledge bases, whatever the pool ----------------------------------------------------
@pytest.mark.ray
@pytest.mark.parametrize("workers,batch_size,batch_chars,mode,segment_method", [
    (1, 1, None, "chunking", "simple"),
    (2, 3, None, "structure", "book"),       # sentences, paragraphs, chapters, books
    (4, 2, 5000, "chunking", "simple"),      # batches also closed by size (characters)
])
def test_parallel_equals_sequential(ray_session, corpus, gpt2_dir, preparers, tmp_path, workers, batch_size,
                                    batch_chars, mode, segment_method):
    ref_kbs, acc = reference(iter_local_documents(corpus), preparers(segment_method, mode), mode)
    store = f"sqlite:///{tmp_path}/kb"
    stats = train(corpus, gpt2_dir, store, mode=mode, segment_method=segment_method, workers=workers,
                  batch_size=batch_size, batch_chars=batch_chars)
    assert_same_kbs(store, stats["run_id"], ref_kbs)
    assert_real_stats(stats, ref_kbs, acc)
    assert stats["num_workers"] == workers and 1 <= stats["workers_used"] <= workers
    assert_usage(stats, len(CHUNKS))
    assert any(record.metadata for record in ref_kbs[1].iter_patterns())   # metadata went through too


@pytest.mark.ray
def test_max_samples_is_the_first_documents_across_shards(ray_session, corpus, gpt2_dir, preparers, tmp_path):
    first6 = list(iter_local_documents(corpus, max_samples=6))    # all of a.jsonl, 2 rows of b.jsonl
    ref_kbs, acc = reference(first6, preparers("simple", "chunking"))
    store = f"sqlite:///{tmp_path}/kb"
    stats = train(corpus, gpt2_dir, store, workers=2, batch_size=1, max_samples=6)
    assert_same_kbs(store, stats["run_id"], ref_kbs)
    assert_real_stats(stats, ref_kbs, acc)


def test_builtin_and_hub_corpora(tmp_path, gpt2_dir):
    shard, = plan_shards(dataset_key="pydoc", max_samples=5)
    batches = list(iter_batches(shard, Batching(batch_size=2)))
    assert [len(docs) for _, docs in batches] == [2, 2, 1]
    assert all(d.doc_id.startswith("pydoc#") for _, docs in batches for d in docs)
    with pytest.raises(ConfigError, match="unknown dataset key 'nope'"):
        plan_shards(dataset_key="nope")
    with pytest.raises(DatasetUnavailableError, match="wikitext"):   # offline in tests: fails at once, named
        train_from_streaming_dataset_parallel("wikitext", 10, tokenizer=str(gpt2_dir), store=f"sqlite:///{tmp_path}",
                                              checkpoint_dir=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="exactly one corpus"):
        plan_shards()


def test_unknown_tokenizer_fails_before_training(corpus, tmp_path):
    with pytest.raises(ConfigError, match="does not hold a tokenizer"):   # on the driver, not in a dead actor
        train_from_streaming_dataset_parallel(data=str(corpus), tokenizer=str(tmp_path), store=f"sqlite:///{tmp_path}",
                                              checkpoint_dir=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="conflicting tokenizers"):
        train_from_streaming_dataset_parallel(data=str(corpus), tokenizer="a", tokenizer_name="b")


# -- exactly once: resume, replay, checkpoints ------------------------------------------------------
@pytest.mark.ray
def test_resume_and_replay_apply_each_batch_exactly_once(ray_session, corpus, gpt2_dir, preparers, tmp_path):
    import ray

    from katoray.runtime import attach_nodes, stop_nodes

    ref_kbs, acc = reference(iter_local_documents(corpus), preparers("simple", "chunking"))
    store, run_id = f"sqlite:///{tmp_path}/kb", f"resume-{uuid.uuid4().hex[:6]}"
    # A run that got through 6 of its 10 batches (the 4 below are skipped as if it stopped first)...
    undone = {"s00000-b00000000", "s00000-b00000002", "s00001-b00000001", "s00002-b00000000"}
    interrupted = train(corpus, gpt2_dir, store, run_id=run_id, workers=2, batch_size=1, skip_batches=undone)
    assert interrupted["samples_processed"] == 10 - len(undone)
    # ...then the same run again with nothing skipped: every batch is sent, finished ones change nothing.
    calls = []
    resumed = train(corpus, gpt2_dir, store, run_id=run_id, workers=2, batch_size=1, checkpoint_interval=4,
                    on_checkpoint=lambda done, stats: calls.append((done, stats["samples_processed"])),
                    keep_nodes=True)
    try:
        assert_same_kbs(store, run_id, ref_kbs)   # the replayed batches were recognised: nothing counted twice
        assert resumed["batches_already_applied"] == 10 - len(undone)
        assert resumed["node0_observations"] + interrupted["node0_observations"] == acc.levels[0].learned
        assert [n for _, n in calls] == [4, 8, 10] and resumed["checkpoints_saved"] == 3   # every 4 docs, the end
        assert len(calls[-1][0]) == 10 and all(len(done) == n for done, n in calls)
        stats = [ray.get(h.stats.remote()) for h in attach_nodes(run_id)]  # the run's nodes, kept, by run id
        assert [s["patterns"] for s in stats] == [kb.count() for kb in ref_kbs]
    finally:
        stop_nodes(attach_nodes(run_id))

    # Another run (a new run id) on the same store learns the same documents again, into its own KBs.
    node0 = trained_kbs(store, run_id)[0]
    before = sum(r.frequency for r in node0.iter_patterns())
    another = train(corpus, gpt2_dir, store, workers=1, batch_size=4, max_samples=2)
    assert another["run_id"] != run_id and another["batches_already_applied"] == 0
    theirs = trained_kbs(store, another["run_id"])[0]
    assert sum(r.frequency for r in theirs.iter_patterns()) == another["node0_observations"] > 0
    assert sum(r.frequency for r in node0.iter_patterns()) == before


# -- the notebook's flow: a learner, its run, its manifest --------------------------------------------
@pytest.mark.ray
@pytest.mark.parametrize("store", [None, "memory://"])   # the default (the run's SQLite files), in-memory
def test_learner_sessions_see_the_training(ray_session, corpus, gpt2_dir, preparers, tmp_path, monkeypatch, store):
    from katoray.compat.analyzers import analyze_all_nodes
    from katoray.compat.learner import HierarchicalConceptLearner
    from katoray.compat.runs import list_all_training_runs, load_latest_manifest

    monkeypatch.chdir(tmp_path)                 # the default runs folder is ./runs
    learner = HierarchicalConceptLearner(nodes=nodes(), tokenizer_name=str(gpt2_dir), metadata_cap=METADATA_CAP,
                                         store=store)
    ref_kbs, acc = reference(iter_local_documents(corpus), preparers("simple", "chunking"))
    stats = train_from_streaming_dataset(None, None, learner, 4, "simple", False, data=str(corpus), batch_size=3)
    for got, want in zip(learner.kbs, ref_kbs):
        assert state(got) == state(want)
    assert_real_stats(stats, ref_kbs, acc)
    some = next(iter(ref_kbs[0].iter_patterns()))
    assert learner.nodes["node0"].get_pattern(some.name)["frequency"] == some.frequency
    # The run has a manifest in ./runs, and its analyzers, the registry and the learner agree.
    manifest = load_latest_manifest()
    assert manifest.run_id == learner.run_id == stats["run_id"] and learner.run_id in list_all_training_runs()
    counts = {name: analyzer.get_stats()["total_patterns"] for name, analyzer in manifest.get_analyzers().items()}
    assert counts == {name: s["total_patterns"] for name, s in analyze_all_nodes(learner).items()}
    assert counts == {f"node{i}": kb.count() for i, kb in enumerate(ref_kbs)}


@pytest.mark.ray
@pytest.mark.mongo
def test_mongodb_store_equals_sequential(ray_session, mongo_uri, corpus, gpt2_dir, preparers, tmp_path):
    from katoray.compat.learner import HierarchicalConceptLearner

    run_id = f"m{uuid.uuid4().hex[:8]}"   # node ids node{i}_<run_id>: databases no other test uses
    learner = HierarchicalConceptLearner(nodes=nodes(), tokenizer_name=str(gpt2_dir), store=mongo_uri,
                                         run_id=run_id, metadata_cap=METADATA_CAP)
    ref_kbs, acc = reference(iter_local_documents(corpus, max_samples=3), preparers("simple", "chunking"))
    try:   # three documents: the in-process test server is slow; the path is what is tested here
        stats = train_from_streaming_dataset_parallel(learner=learner, data=str(corpus), max_samples=3,
                                                      num_workers=2, batch_size=1, verbose=False,
                                                      checkpoint_dir=str(tmp_path / "runs"))
        for got, want in zip(learner.kbs, ref_kbs):
            assert state(got) == state(want)
        assert_real_stats(stats, ref_kbs, acc)
        assert stats["run_id"] == run_id and learner.kbs[0].kb_id == f"node0_{run_id}_kato"
    finally:
        for kb in learner.kbs:
            kb.clear()
        learner.close()


def test_progress_line_in_logs_and_on_terminals():
    import io

    from katoray.runtime.progress import ProgressLine

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log = io.StringIO()
    line = ProgressLine(log, log_interval_s=3600)
    line.update("first")                       # not due yet: nothing
    line.close("done")
    assert log.getvalue() == "done\n"          # a log gets whole lines
    tty = Terminal()
    line = ProgressLine(tty, interval_s=0)
    line.update("long text")
    line.update("short")
    line.close()
    assert tty.getvalue() == "\rlong text\rshort    \n"   # rewritten in place, then ended
    silent = ProgressLine(None)
    silent.update("x", force=True)
    silent.close("y")                          # verbose=False: writes nowhere


# -- bad input is named at the driver ------------------------------------------------------------
@pytest.mark.ray
def test_row_without_text_is_named(ray_session, gpt2_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "In the beginning."}) + "\n" + json.dumps({"title": "no text"}) + "\n")
    with pytest.raises(CorpusError, match=r"bad\.jsonl, row 1 .*no field 'text'") as raised:
        train(bad, gpt2_dir, f"sqlite:///{tmp_path}/kb", workers=1)
    _is_ours_alone(raised.value)


def _is_ours_alone(err: BaseException) -> None:
    """The error itself, not Ray's copy of it, and no Ray advice or remote traceback in its message."""
    assert type(err) in (CorpusError, DocumentError), type(err).__mro__
    assert "Failed to" not in str(err) and "ray::" not in str(err) and "Traceback" not in str(err), str(err)


@pytest.mark.ray
def test_document_the_tokenizer_rejects_is_named(ray_session, gpt2_dir, tmp_path):
    docs = [Document("Fine text.", "ok#0", "memo"), Document("A lone surrogate \ud800 here.", "bad#1", "memo")]
    with pytest.raises(DocumentError, match=r"'bad#1' \(memo\) could not be tokenized") as raised:
        train(None, gpt2_dir, f"sqlite:///{tmp_path}/kb", documents=docs, workers=1)
    _is_ours_alone(raised.value)
