"""The ``katoray`` command line, run as users run it: real subprocesses, each with its own Ray.

``katoray train`` with no arguments is the first thing a user types: it must train the default
hierarchy on the built-in corpus and say where the run is. Errors are one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from katoray.cli import build_parser, main
from katoray.jobs import TrainingManifest, fingerprint
from tests.conftest import KJV_BOOKS
from tests.jobs import GPT2, REPO, cli_env, corpus, katoray, session_env


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``katoray train`` with no arguments, in an empty folder."""
    cwd = tmp_path_factory.mktemp("cwd")
    result = katoray("train", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd, result


# -- katoray train, then katoray runs ... -------------------------------------------------------------
def test_train_with_no_arguments_trains_the_default_run(default_run):
    cwd, result = default_run
    lines = result.stdout.splitlines()
    banner = lines[0].split()
    assert banner[:2] == ["katoray", "run"] and banner[3:5] == ["in", f"{cwd}/runs/{banner[2]}"]
    run_id = banner[2]
    assert "(pydoc, 4 levels, chunk sizes 8,8,8,8, chunking)" in lines[0]
    assert lines[1].startswith(f"run {run_id} finished: 79 documents, ")
    assert [line.split(":")[0].strip() for line in lines[2:6]] == ["node0", "node1", "node2", "node3"]
    assert all(" CPU s, " in line and line.endswith(" MiB peak") for line in lines[2:6])   # per node actor
    assert lines[6].startswith("  pool: ") and "; driver: " in lines[6] and lines[6].endswith(" MiB peak")
    assert lines[-1] == f"manifest: {cwd}/runs/{run_id}/manifest.json"
    manifest = TrainingManifest.load(cwd / "runs" / run_id)
    assert manifest.status == "finished" and manifest.documents == 79
    assert (manifest.config["dataset"], manifest.config["tokenizer"], manifest.tokenizer["name"]) == (
        "pydoc", None, "katoray-bytes")
    assert manifest.config["store"] == f"sqlite:///{cwd}/runs/{run_id}/kb"
    assert "Traceback" not in result.stderr


def test_runs_list_show_and_fingerprint(default_run):
    cwd, _ = default_run
    run_id = TrainingManifest.load(next((cwd / "runs").iterdir())).run_id
    listed = katoray("runs", "list", cwd=cwd)
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["RUN", "ID", "STATUS"] and row.split()[:2] == [run_id, "finished"]
    as_json = json.loads(katoray("runs", "list", "--json", cwd=cwd).stdout)
    assert as_json[run_id]["documents"] == 79 and as_json[run_id]["nodes"] == 4
    shown = json.loads(katoray("runs", "show", run_id, cwd=cwd).stdout)
    assert shown == TrainingManifest.load(cwd / "runs" / run_id).to_dict()
    printed = katoray("runs", "fingerprint", run_id, cwd=cwd)
    assert json.loads(printed.stdout) == fingerprint(run_id, cwd / "runs")
    assert printed.stdout.count("\n") == 1                                     # one JSON line


def test_runs_delete_needs_yes_without_a_terminal(default_run):
    cwd, _ = default_run
    run_dir = next((cwd / "runs").iterdir())
    refused = katoray("runs", "delete", run_dir.name, cwd=cwd, input="DELETE\n")   # stdin is a pipe: no prompt
    assert refused.returncode == 2 and run_dir.exists()
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]     # one line
    assert "stdin is not a terminal" in refused.stderr and "--yes" in refused.stderr
    deleted = katoray("runs", "delete", run_dir.name, "--yes", cwd=cwd)
    assert deleted.returncode == 0 and deleted.stdout.startswith(f"deleted run {run_dir.name}: {run_dir}")
    assert not run_dir.exists()
    assert katoray("runs", "list", cwd=cwd).stdout.strip() == "no runs"


def test_runs_delete_asks_on_a_terminal(tmp_path):
    """With a terminal on stdin, ``delete`` asks, and only ``DELETE`` deletes."""
    import os
    import pty

    from katoray.jobs import TrainConfig, TrainingManifest as Manifest

    config = TrainConfig(runs_dir=str(tmp_path)).for_run("asked")
    Manifest("asked", config.to_dict(), {}, {"name": "katoray-bytes"}, {"kind": "pydoc"}).save(config.run_dir)
    for answer, verdict in (("no\n", "kept run asked"), ("DELETE\n", "deleted run asked")):
        controller, terminal = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "katoray", "runs", "delete", "asked", "--runs-dir", str(tmp_path)],
                                stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        os.close(terminal)
        os.write(controller, answer.encode())
        out, err = proc.communicate(timeout=60)
        os.close(controller)
        assert proc.returncode == 0, err
        assert out.startswith("Delete run asked: folder ") and "Type DELETE to confirm: " + verdict in out
    assert not config.run_dir.exists()


def test_train_json_is_the_last_line(ray_session, tmp_path, tmp_path_factory, kjv_books_path):
    books = corpus(tmp_path_factory, kjv_books_path, 8_000)
    console_script = Path(sys.executable).with_name("katoray")      # the installed entry point, not -m
    result = subprocess.run([str(console_script), "train", "--data", str(books), "--tokenizer", str(GPT2),
                             "--max-samples", "3", "--chunk-sizes", "4", "--nodes", "2", "--runs-dir", str(tmp_path),
                             "--run-id", "as-json", "--json"], env=session_env(ray_session), capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("katoray run as-json in ")
    stats = json.loads(lines[-1])
    assert stats["run_id"] == "as-json" and stats["status"] == "finished" and stats["samples_processed"] == 3
    assert stats["node0_patterns"] > 0 and "node2_patterns" not in stats
    assert stats["run_dir"] == str(tmp_path / "as-json")
    quiet = katoray("resume", "as-json", "--runs-dir", str(tmp_path), "--json", "--quiet")
    assert quiet.returncode == 0 and len(quiet.stdout.splitlines()) == 1    # --quiet: only the JSON
    assert json.loads(quiet.stdout)["resumed"] is False


# -- help ----------------------------------------------------------------------------------------------
def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_is_described_with_its_default():
    parsers = list(_parsers(build_parser()))
    assert {p.prog for p in parsers} >= {"katoray train", "katoray resume", "katoray runs list", "katoray runs show",
                                         "katoray runs fingerprint", "katoray runs delete", "katoray serve"}
    for parser in parsers:
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            assert action.help and len(action.help) > 10, f"{parser.prog} {action.dest}: no description"
            name = action.option_strings[0] if action.option_strings else action.metavar
            assert name in text, f"{parser.prog}: {name} missing from --help"
            if action.option_strings and action.default not in (None, False):
                assert f"(default: {action.default})" in " ".join(text.split()), f"{parser.prog} {name}: default"


def test_help_from_the_shell():
    top = katoray("--help")
    assert top.returncode == 0 and all(cmd in top.stdout for cmd in ("train", "resume", "runs", "serve"))
    train = katoray("train", "--help")
    assert train.returncode == 0 and "--checkpoint-interval N" in train.stdout and "(default: 4096)" in train.stdout
    job = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--help"], capture_output=True,
                         text=True, env=cli_env(), timeout=60)
    assert job.returncode == 0 and "--runs-dir DIR" in job.stdout and "required for a Ray job" in job.stdout


def test_the_summary_says_what_a_level_could_not_learn():
    from katoray.cli.train import _summary

    stats = {"run_id": "r", "status": "finished", "samples_processed": 3, "tokens_processed": 900,
             "empty_documents": 1, "run_dir": "/runs/r"}
    for level, (patterns, unlearned) in enumerate([(120, 0), (9, 2), (0, 9)]):
        stats.update({f"node{level}_patterns": patterns, f"node{level}_observations": patterns,
                      f"node{level}_unlearned": unlearned, f"node{level}_reuse_rate": 0.0})
    text = _summary(stats)
    assert "node0: 120 patterns, 120 learns, reuse" in text
    assert "node1: 9 patterns, 9 learns, 2 symbols left unlearned, reuse" in text
    assert "note: node2 learned nothing" in text and "note: node1" not in text
    assert "note: 1 document(s) had no text" in text


# -- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["train", "--nodes", "3", "--chunk-sizes", "8,8"], "chunk_sizes has 2 values [8, 8] but levels is 3"),
    (["train", "--data", "/nonexistent/books.jsonl"], "corpus path '/nonexistent/books.jsonl' does not exist"),
    (["train", "--store", "memory://"], "store memory:// lives and dies with one process"),
    (["train", "--store", "mongodb"], "--store mongodb takes the URL from $MONGO_URI, which is not set"),
    (["train", "--dataset", "nope"], "unknown dataset key 'nope'"),
    (["train", "--data", str(KJV_BOOKS), "--text-field", "body"],
     "row 0 (line 1): no field 'body'; available fields: ['title', 'abbrev', 'text']"),
    (["resume", "nosuch"], "no run manifest at"),
    (["runs", "show", "nosuch"], "no run manifest at"),
    (["runs", "fingerprint", "../escape"], "run id must be a non-empty name without slashes"),
])
def test_errors_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONGO_URI", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("katoray: error: ") and message in err
    assert not (tmp_path / "runs").exists()      # refused before anything was made


@pytest.mark.parametrize("argv, message", [
    (["train", "--chunk-sizes", "8,1"], "every chunk size must be >= 2"),
    (["train", "--mode", "sentences"], "invalid choice: 'sentences'"),
    (["train", "--workers", "two"], "must be an integer, got 'two'"),
    (["bogus"], "invalid choice: 'bogus'"),
])
def test_bad_options_exit_2_with_the_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_reader_that_leaves_gets_no_traceback(tmp_path):
    # `katoray runs list | head`: the pipe closes before katoray writes (it is still importing).
    proc = subprocess.Popen([sys.executable, "-m", "katoray", "runs", "list", "--runs-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""


CTRL_C_DURING_SHUTDOWN = """
import os, signal, sys, time
import ray
from katoray.cli import _stop_ray
signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal, even if started from `cmd &`
ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
real_shutdown = ray.shutdown

def shutdown(*args, **kwargs):   # a Ctrl-C lands while Ray shuts down, whatever the machine's load
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)           # the KeyboardInterrupt arrives here, at once
    finally:
        real_shutdown(*args, **kwargs)

ray.shutdown = shutdown
sys.exit(_stop_ray(int(sys.argv[1])))
"""


@pytest.mark.parametrize("status, line", [
    (0, "interrupted while Ray shut down; the command had already finished and saved what it did"),
    (130, "interrupted again while Ray shut down; the run had already stopped and recorded it"),   # a 2nd Ctrl-C
])
def test_ctrl_c_while_ray_shuts_down_gets_one_line(status, line):
    """After a command has ended, the console entry point stops Ray itself; a Ctrl-C then ends it
    with one line and status 130, not Ray's traceback from the interpreter's exit, and the line
    does not claim a stopped run finished."""
    result = subprocess.run([sys.executable, "-c", CTRL_C_DURING_SHUTDOWN, str(status)], capture_output=True,
                            text=True, env=cli_env(), timeout=120, cwd=REPO)
    assert result.returncode == 130, result.stderr[-3000:]
    assert f"katoray: error: {line}" in result.stderr
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr


def test_errors_from_the_shell_have_no_traceback(tmp_path):
    result = katoray("train", "--tokenizer", str(tmp_path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("katoray: error: folder ") and "does not hold a tokenizer" in result.stderr
    job = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--runs-dir", "relative/runs"],
                         capture_output=True, text=True, env=cli_env(), timeout=60)
    assert job.returncode == 2 and "--runs-dir must be an absolute path in a Ray job" in job.stderr
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py")], capture_output=True, text=True,
                             env=cli_env(), timeout=60)
    assert missing.returncode == 2 and "the following arguments are required: --runs-dir" in missing.stderr


# -- serve ----------------------------------------------------------------------------------------------
def test_serve_answers_kato_requests(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "katoray", "serve", "--port", "0", "--store", f"sqlite:///{tmp_path}"],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        url = banner.split(" on ", 1)[1].split()[0]
        assert banner.startswith("katoray serve: KATO API on http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            assert response.status == 200
    finally:
        proc.terminate()                          # SIGTERM: a clean stop
        assert proc.wait(timeout=30) == 0
