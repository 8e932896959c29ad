"""Kill a run, resume it, and get exactly what an uninterrupted run gets.

The crash is real: a ``katoray train`` subprocess (its driver, its Ray, its actors) is SIGKILLed
mid-run, then ``katoray resume`` finishes it. Equal fingerprints (per level, a sha256 over every
pattern's name and frequency) prove that no batch was lost and none counted twice. The same on
MongoDB (SecantusDB), where a batch interrupted half-way is rolled forward by the next apply.
"""
from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

from katoray.errors import ConfigError
from katoray.jobs import Checkpoint, TrainConfig, TrainingManifest, fingerprint, resume_run, start_run
from katoray.jobs.manifest import data_identity, versions
from katoray.jobs.runs import RunBusyError, RunLock
from katoray.store import run_kb_id
from katoray.text.corpora import CorpusError
from katoray.text.tokenizers import load_tokenizer
from tests.jobs import (GPT2, alive, cli_env, corpus, counted, crash, descendants, katoray, reference_fingerprint,
                        reference_run, session_env, start_katoray, wait_for_checkpoint)

BOOKS_UNDER = 20_000     # 29 books: long enough to be killed mid-run with batches of one book
TINY_BOOKS_UNDER = 8_000  # 11 books for the slower in-process MongoDB server
TRAIN = ("--tokenizer", str(GPT2), "--batch-size", "1", "--checkpoint-interval", "3", "--workers", "2")


@pytest.fixture(scope="module")
def books(tmp_path_factory, kjv_books_path):
    return corpus(tmp_path_factory, kjv_books_path, BOOKS_UNDER)


def kill_then_resume(ray_session, runs_dir, run_id, data, store_args=(), env_extra=None, kill_after=4):
    """Train in a subprocess on its own Ray, crash it with everything it started after
    ``kill_after`` checkpointed batches, resume it in a subprocess on the session's Ray
    (``env_extra``: more environment for both, such as ``MONGO_URI``)."""
    env_extra = env_extra or {}
    proc = start_katoray("train", "--data", str(data), "--runs-dir", str(runs_dir), "--run-id", run_id, *TRAIN,
                         *store_args, "--quiet", env=cli_env(**env_extra))
    at_kill = wait_for_checkpoint(runs_dir / run_id, kill_after, proc)
    crash(proc)
    manifest = TrainingManifest.load(runs_dir / run_id)
    assert manifest.status == "running"                  # nobody could record the end
    resumed = katoray("resume", run_id, "--runs-dir", str(runs_dir), "--json",
                      env=session_env(ray_session, **env_extra))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return at_kill, json.loads(resumed.stdout.strip().splitlines()[-1])


@pytest.mark.ray
def test_sigkilled_run_resumes_to_the_uninterrupted_result(ray_session, books, tmp_path, tmp_path_factory):
    expected, uninterrupted = reference_run(tmp_path_factory, data=str(books), tokenizer=str(GPT2), batch_size=1,
                                            workers=2)
    at_kill, stats = kill_then_resume(ray_session, tmp_path, "killed", books)
    assert at_kill["num_completed_batches"] < len(books.read_text().splitlines()) == 29
    assert fingerprint("killed", tmp_path) == expected
    assert counted(stats) == counted(uninterrupted)   # unlearned symbols, new patterns, reuse: as if never killed
    assert stats["status"] == "finished" and stats["resumed"] and stats["attempts"] == 2
    assert stats["samples_processed"] == 29        # every document counted once over both attempts
    assert 1 <= stats["workers_used"] <= 2         # pool actors over both attempts, never more than the pool
    prints = fingerprint("killed", tmp_path)       # learn events too, batches replayed after the checkpoint included
    assert [stats[f"node{i}_observations"] for i in range(len(prints))] == [
        prints[f"node{i}"]["total_frequency"] for i in range(len(prints))]
    manifest = TrainingManifest.load(tmp_path / "killed")
    assert [a["outcome"] for a in manifest.attempts] == ["running", "finished"]   # the first never ended
    assert manifest.attempts[1]["skipped_batches"] >= at_kill["num_completed_batches"]   # the last checkpoint's
    assert Checkpoint.load(tmp_path / "killed").completed == {f"s00000-b{i:08d}" for i in range(29)}


@pytest.mark.ray
def test_sigterm_stops_a_run_that_records_it_and_resumes(ray_session, books, tmp_path, tmp_path_factory):
    """``kill``, ``ray job stop``: the run ends as failed, says how to continue, and continues."""
    expected = reference_fingerprint(tmp_path_factory, data=str(books), tokenizer=str(GPT2), batch_size=1)
    proc = start_katoray("train", "--data", str(books), "--runs-dir", str(tmp_path), "--run-id", "stopped", *TRAIN)
    wait_for_checkpoint(tmp_path / "stopped", 3, proc)
    its_ray = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert f"katoray: error: interrupted; continue with: katoray resume stopped --runs-dir {tmp_path}\n" in err
    assert "SIGTERM received" not in err and "PC: @" not in err     # no stack dump from Ray's C++ handler
    manifest = TrainingManifest.load(tmp_path / "stopped")
    assert manifest.status == "failed" and manifest.error == "stopped by SystemExit 15; resume the run to continue"
    deadline = time.monotonic() + 30                 # its Ray ends with it; no writer of its stores remains
    while any(alive(pid) for pid in its_ray) and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = resume_run("stopped", tmp_path, verbose=False)      # here, on this session's Ray
    assert stats["samples_processed"] == 29 and stats["attempts"] == 2
    assert fingerprint("stopped", tmp_path) == expected


@pytest.mark.ray
@pytest.mark.mongo
def test_sigkilled_mongodb_run_resumes_to_the_uninterrupted_result(ray_session, mongo_uri, kjv_books_path, tmp_path,
                                                                   tmp_path_factory):
    import pymongo

    data = corpus(tmp_path_factory, kjv_books_path, TINY_BOOKS_UNDER)
    expected = reference_fingerprint(tmp_path_factory, data=str(data), tokenizer=str(GPT2), batch_size=1)  # sqlite: same
    try:
        at_kill, stats = kill_then_resume(ray_session, tmp_path, "killed-mongo", data, ("--store", "mongodb"),
                                          {"MONGO_URI": mongo_uri}, kill_after=3)
        books = len(data.read_text().splitlines())
        assert at_kill["num_completed_batches"] < books == 11
        assert fingerprint("killed-mongo", tmp_path, mongo_uri) == expected
        assert stats["samples_processed"] == books and stats["attempts"] == 2
        manifest = TrainingManifest.load(tmp_path / "killed-mongo")
        assert manifest.store == mongo_uri and [n["kb_id"] for n in manifest.nodes.values()] == [
            f"node{i}_killed-mongo_kato" for i in range(4)]
    finally:
        client = pymongo.MongoClient(mongo_uri)
        for i in range(4):
            client.drop_database(run_kb_id(i, "killed-mongo"))
        client.close()


@pytest.mark.ray
def test_batches_past_the_checkpoint_are_sent_again_and_count_once(ray_session, tmp_path):
    """A checkpoint behind the stores (the crash came after more batches were durable): the resume
    re-sends those batches, the ledgers recognise them, and every count stays exact."""
    config = TrainConfig(max_samples=12, batch_size=2, run_id="behind", runs_dir=str(tmp_path), verbose=False)
    first = start_run(config)
    before = fingerprint("behind", tmp_path)
    run_dir = tmp_path / "behind"
    done = Checkpoint.load(run_dir)
    kept = sorted(done.completed)[:2]
    Checkpoint("behind", frozenset(kept), {"samples_processed": 4, "tokens_processed": 0}).save(run_dir)
    manifest = TrainingManifest.load(run_dir)
    manifest.status = "running"
    manifest.save()

    resumed = resume_run("behind", tmp_path)
    assert resumed["batches_already_applied"] == 4 and resumed["batches_processed"] == 4
    assert resumed["samples_processed"] == first["samples_processed"] == 12
    assert fingerprint("behind", tmp_path) == before
    assert Checkpoint.load(run_dir).completed == done.completed


@pytest.mark.ray
def test_a_finished_run_has_nothing_to_resume(ray_session, books, tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("finished")
    stats = start_run(TrainConfig(max_samples=3, run_id="done", runs_dir=str(runs_dir), verbose=False))
    again = resume_run("done", runs_dir)
    assert again["resumed"] is False and again["status"] == "finished" and again["attempts"] == 1
    assert again["samples_processed"] == stats["samples_processed"] == 3
    cli = katoray("resume", "done", "--runs-dir", str(runs_dir))
    assert cli.returncode == 0 and "had already finished (3 documents): nothing to do" in cli.stdout


# -- refusals (no training needed: they come before any) -------------------------------------------
@pytest.fixture
def unfinished(tmp_path, books):
    """A run that was killed before its first checkpoint: its manifest, as start_run wrote it."""
    data = tmp_path / "books.jsonl"
    shutil.copy(books, data)
    config = TrainConfig(data=str(data), tokenizer=str(GPT2), runs_dir=str(tmp_path / "runs")).for_run("r1")
    nodes = {f"node{i}": {"node_id": f"node{i}_r1", "kb_id": run_kb_id(i, "r1")} for i in range(4)}
    TrainingManifest("r1", config.to_dict(), nodes, load_tokenizer(str(GPT2)).identity(),
                     data_identity(config.data, None), versions()).save(config.run_dir)
    return tmp_path / "runs", data


def test_resume_refuses_another_structure_listing_every_difference(unfinished, tmp_path):
    runs_dir, data = unfinished
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "another corpus"}\n')
    with pytest.raises(ConfigError) as refused:
        resume_run("r1", runs_dir, chunk_sizes=(4, 4, 4, 4), mode="structure", tokenizer=None, data=str(other),
                   workers=1)
    message = str(refused.value)
    assert message.startswith("run 'r1' cannot resume with a different structural configuration")
    for difference in ("chunk_sizes: run had [8, 8, 8, 8], now [4, 4, 4, 4]",
                       "mode: run had 'chunking', now 'structure'", f"tokenizer: run had '{GPT2}', now None",
                       f"data: run had '{data}', now '{other}'"):
        assert difference in message
    assert "workers" not in message                    # run-time: may change
    with pytest.raises(ConfigError, match=r"levels: run had 4, now 3; chunk_sizes: run had \[8, 8, 8, 8\], now "
                                          r"\[8, 8, 8\]"):
        resume_run("r1", runs_dir, nodes=3)
    with pytest.raises(ConfigError, match=r"resume cannot set \['batch_sizes'\]: it takes the run-time fields"):
        resume_run("r1", runs_dir, batch_sizes=8)


def test_a_run_from_before_smaller_first_batches_keeps_its_batching(unfinished):
    """A manifest without ``first_batch_chars`` (katoray before it) resumes with none: its batch
    ids name the batches it was cut into. A new run's is recorded; either is structural."""
    runs_dir, _ = unfinished
    manifest = TrainingManifest.load(runs_dir / "r1")
    assert manifest.config["first_batch_chars"] == 65_536
    with pytest.raises(ConfigError, match=r"first_batch_chars: run had 65536, now None"):
        resume_run("r1", runs_dir, first_batch_chars=None)
    del manifest.config["first_batch_chars"]
    manifest.save()
    with pytest.raises(ConfigError, match=r"first_batch_chars: run had None, now 65536"):
        resume_run("r1", runs_dir, first_batch_chars=65_536)


def test_resume_refuses_a_corpus_that_changed_since_the_run_started(unfinished):
    runs_dir, data = unfinished
    before = data.read_bytes()
    data.write_bytes(before.replace(b"Ruth", b"Rute", 1))          # same size, other content
    with pytest.raises(ConfigError, match=rf"data\[{data.name}\]: run had sha256 \w{{12}}… \({len(before):,} bytes\), "
                                          rf"now sha256 \w{{12}}… \({len(before):,} bytes\)"):
        resume_run("r1", runs_dir)
    data.unlink()
    with pytest.raises(CorpusError, match="does not exist"):
        resume_run("r1", runs_dir)
    assert TrainingManifest.load(runs_dir / "r1").status == "running"     # refusals change nothing


def test_resume_refuses_a_run_being_trained(unfinished):
    runs_dir, _ = unfinished
    with RunLock(runs_dir / "r1"):
        with pytest.raises(RunBusyError, match=r"run 'r1' is being trained right now \(pid \d+ on "):
            resume_run("r1", runs_dir)


def test_notebook_functions_checkpoint_and_resume(tmp_path, ray_session, gpt2_dir, kjv_books_path, monkeypatch):
    """kato-lm's train_from_streaming_dataset(checkpoint_dir=..., resume_from_checkpoint=True) flow."""
    import katoray

    monkeypatch.chdir(tmp_path)     # the learner's knowledge bases: ./runs/<run_id>/kb by default
    from katoray import HierarchicalConceptLearner, HierarchicalNode
    from katoray.jobs import fingerprint

    runs = tmp_path / "runs"
    nodes = [HierarchicalNode(f"node{i}", chunk_size=8) for i in range(2)]
    learner = HierarchicalConceptLearner(nodes=nodes, tokenizer_name=str(gpt2_dir), run_id="nb-run")
    stats = katoray.train_from_streaming_dataset(data=str(kjv_books_path), max_samples=2, learner=learner,
                                                 num_levels=2, checkpoint_dir=str(runs), checkpoint_interval=1,
                                                 verbose=False)
    assert stats["run_id"] == "nb-run" and stats["samples_processed"] == 2
    again = katoray.train_from_streaming_dataset(learner=learner, num_levels=2, checkpoint_dir=str(runs),
                                                 resume_from_checkpoint=True, verbose=False)
    assert again["resumed"] is False  # finished already: nothing to do
    assert fingerprint("nb-run", runs)["node0"]["patterns"] == stats["node0_patterns"] > 0
