"""Runs never share a knowledge base by accident, and every failure ends in one message and a true manifest.

Real runs (the session's Ray, or ``katoray`` subprocesses), real stores: SQLite files, a tmpfs
that fills up for real, a MongoDB wire-protocol server stopped mid-run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from katoray.errors import ConfigError
from katoray.jobs import TrainConfig, TrainingManifest, fingerprint, start_run
from katoray.jobs.runs import list_runs, load_manifest
from tests.jobs import GPT2, corpus, katoray, session_env, start_katoray, wait_for_checkpoint

def katoray_lines(stderr: str) -> list[str]:
    """What katoray said: stderr without Ray's own start-up line (README: harmless, not katoray's)."""
    return [line for line in stderr.splitlines() if "core_worker.cc" not in line]


TINY = dict(dataset="pydoc", max_samples=4, levels=2, batch_size=2, verbose=False)


# -- a knowledge base belongs to one run ---------------------------------------------------------------
@pytest.mark.ray
def test_run_ids_kato_would_fold_together_train_apart(ray_session, tmp_path):
    """exp-1 and exp_1 once wrote the same files: the second run counted on top of the first."""
    store = f"sqlite:///{tmp_path}/kbs"
    prints = {}
    for run_id in ("exp-1", "exp_1", "exp.1"):
        start_run(TrainConfig(store=store, run_id=run_id, runs_dir=str(tmp_path / "runs"), **TINY))
        prints[run_id] = fingerprint(run_id, tmp_path / "runs")
    assert prints["exp-1"] == prints["exp_1"] == prints["exp.1"]          # nothing doubled
    assert sorted(p.name for p in (tmp_path / "kbs").glob("*.sqlite")) == sorted(
        f"node{i}_{name}_kato.sqlite" for i in range(2) for name in ("exp-1", "exp_1", "exp~2e~1"))


@pytest.mark.ray
def test_a_knowledge_base_of_another_run_is_refused_before_anything_is_written(ray_session, tmp_path):
    """The same run id in two runs folders, one store: two runs, one set of names."""
    store = f"sqlite:///{tmp_path}/kbs"
    first = start_run(TrainConfig(store=store, run_id="same", runs_dir=str(tmp_path / "a"), **TINY))
    before = fingerprint("same", tmp_path / "a")
    with pytest.raises(ConfigError) as refused:
        start_run(TrainConfig(store=store, run_id="same", runs_dir=str(tmp_path / "b"), **TINY))
    message = str(refused.value)
    assert "node0_same_kato" in message and "belongs to another run" in message
    assert f"run 'same' in {first['run_dir']}" in message
    assert not (tmp_path / "b" / "same" / "manifest.json").exists()      # no run was created
    assert fingerprint("same", tmp_path / "a") == before                 # and the owner's KBs are untouched


# -- the registry tells a dead run from a running one ----------------------------------------------------
def test_a_run_whose_driver_is_gone_is_listed_as_interrupted(tmp_path):
    from katoray.jobs.manifest import data_identity
    from katoray.jobs.runs import RunLock

    config = TrainConfig(runs_dir=str(tmp_path)).for_run("gone")
    manifest = TrainingManifest("gone", config.to_dict(), {}, {"name": "katoray-bytes"}, data_identity(None, "pydoc"))
    manifest.save(config.run_dir)                        # status "running", as a SIGKILLed driver leaves it
    assert list_runs(tmp_path)["gone"]["status"] == "interrupted"
    shown = katoray("runs", "show", "gone", "--runs-dir", str(tmp_path))
    assert json.loads(shown.stdout)["status"] == "interrupted"
    with RunLock(config.run_dir):                        # a live driver holds the run's lock
        assert list_runs(tmp_path)["gone"]["status"] == "running"
        assert load_manifest("gone", tmp_path).status == "running"


# -- a full disk ----------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (root only, as CI runs); grown with ``remount`` later in the test."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); CI runs as root and can")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.ray
def test_a_full_disk_ends_in_one_message_and_resumes_once_there_is_room(ray_session, small_disk, tmp_path,
                                                                       tmp_path_factory, kjv_books_path):
    from tests.jobs import reference_fingerprint

    data = corpus(tmp_path_factory, kjv_books_path, 20_000)
    args = ("--data", str(data), "--tokenizer", str(GPT2), "--batch-size", "1", "--workers", "1", "--quiet")
    env = session_env(ray_session)
    failed = katoray("train", *args, "--runs-dir", str(small_disk), "--run-id", "full", env=env)
    assert failed.returncode == 2, failed.stderr[-3000:]
    said = katoray_lines(failed.stderr)
    assert len(said) == 1 and said[0].startswith("katoray: error: ") and "Traceback" not in failed.stderr
    assert "is full" in said[0]
    assert f"katoray resume full --runs-dir {small_disk}" in failed.stderr
    status = list_runs(small_disk)["full"]["status"]
    assert status in ("failed", "interrupted")            # whichever the disk let it record; never "running"
    again = katoray("resume", "full", "--runs-dir", str(small_disk), "--quiet", env=env)   # the disk is still full
    assert again.returncode == 2 and "Traceback" not in again.stderr and "is full" in again.stderr
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    resumed = katoray("resume", "full", "--runs-dir", str(small_disk), "--quiet", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = reference_fingerprint(tmp_path_factory, data=str(data), tokenizer=str(GPT2), batch_size=1)
    assert fingerprint("full", small_disk) == expected


@pytest.mark.ray
def test_a_runs_folder_that_fills_mid_run_ends_in_one_message(ray_session, small_disk, tmp_path, tmp_path_factory,
                                                               kjv_books_path):
    """The manifest cannot be written even to say the run failed: one line, and the run is interrupted."""
    from tests.jobs import reference_fingerprint

    data = corpus(tmp_path_factory, kjv_books_path, 20_000)
    proc = start_katoray("train", "--data", str(data), "--tokenizer", str(GPT2), "--batch-size", "1",
                         "--checkpoint-interval", "1", "--workers", "1", "--quiet", "--runs-dir", str(small_disk),
                         "--run-id", "filled", "--store", f"sqlite:///{tmp_path}/kbs", env=session_env(ray_session))
    wait_for_checkpoint(small_disk / "filled", 2, proc)
    with open(small_disk / "ballast", "wb") as ballast:      # another program fills the disk
        with pytest.raises(OSError):
            while True:
                ballast.write(b"\0" * 65536)
                ballast.flush()
    _, err = proc.communicate(timeout=240)
    said = katoray_lines(err)
    assert proc.returncode == 2 and len(said) == 1 and "Traceback" not in err, err[-3000:]
    assert f"the disk holding {small_disk / 'filled'} is full" in said[0]
    assert f"katoray resume filled --runs-dir {small_disk}" in said[0]
    assert list_runs(small_disk)["filled"]["status"] in ("interrupted", "failed")   # never "running"
    (small_disk / "ballast").unlink()
    resumed = katoray("resume", "filled", "--runs-dir", str(small_disk), "--quiet", env=session_env(ray_session))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert fingerprint("filled", small_disk) == reference_fingerprint(tmp_path_factory, data=str(data),
                                                                      tokenizer=str(GPT2), batch_size=1)


# -- a MongoDB server lost mid-run ------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.mongo
def test_a_lost_mongodb_server_ends_in_one_message_naming_the_host(ray_session, tmp_path, tmp_path_factory,
                                                                   kjv_books_path):
    from secantus import SecantusDBServer

    if os.environ.get("MONGO_URI"):
        pytest.skip("stops a server of its own; MONGO_URI points at a server this test must not stop")
    server = SecantusDBServer(port=0, storage_path=str(tmp_path / "mongo"))
    server.start()
    uri = server.uri
    data = corpus(tmp_path_factory, kjv_books_path, 20_000)
    try:
        proc = start_katoray("train", "--data", str(data), "--tokenizer", str(GPT2), "--batch-size", "1",
                             "--checkpoint-interval", "1", "--workers", "1", "--runs-dir", str(tmp_path / "runs"),
                             "--run-id", "lost", "--store", "mongodb", "--quiet",
                             env=session_env(ray_session, MONGO_URI=uri))
        wait_for_checkpoint(tmp_path / "runs" / "lost", 2, proc)
    finally:
        server.stop()
    out, err = proc.communicate(timeout=240)
    host = uri.split("://", 1)[1].split("/", 1)[0]
    assert proc.returncode == 2, err[-3000:]
    said = katoray_lines(err)
    assert len(said) == 1 and said[0].startswith("katoray: error: ") and host in said[0], err[-3000:]
    assert "Traceback" not in err and "katoray resume lost" in err
    manifest = TrainingManifest.load(tmp_path / "runs" / "lost")
    assert manifest.status == "failed" and host in manifest.error and "\x1b[" not in manifest.error
    shutil.rmtree(tmp_path / "mongo", ignore_errors=True)


@pytest.mark.ray
def test_a_jsonl_of_blank_lines_says_it_taught_nothing(ray_session, tmp_path):
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n   \n")
    done = katoray("train", "--data", str(blank), "--runs-dir", str(tmp_path / "runs"), "--quiet",
                   env=session_env(ray_session))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "note: no documents were read (the corpus holds no rows, or only blank lines" in done.stdout
