"""``katoray serve`` from the command line: a trained run's nodes, start-up checks, warnings."""
from __future__ import annotations

import re
import subprocess
import sys

import requests

from katoray import pattern_name
from katoray.engine.naming import pattern_hash
from katoray.jobs import TrainConfig, TrainingManifest
from katoray.jobs.manifest import data_identity
from katoray.store import kb_id_for, open_store
from katoray.store.base import PatternDelta
from tests.jobs import cli_env, katoray

TIMEOUT_S = 60


def _started(*args: str) -> tuple[subprocess.Popen, str]:
    """``katoray serve ARGS`` in a subprocess, and what it printed up to the line naming its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "katoray", "serve", "--port", "0", *args], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = ""
    while "KATO API on" not in printed and proc.poll() is None:
        printed += proc.stdout.readline()
    return proc, printed


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return err


def _trained_run(runs_dir, run_id: str) -> list[list[list[str]]]:
    """A run as training leaves it (manifest, SQLite knowledge bases): one pattern per level."""
    config = TrainConfig(runs_dir=str(runs_dir), levels=2).for_run(run_id)
    nodes = {f"node{i}": {"node_id": f"node{i}_{run_id}", "kb_id": kb_id_for(f"node{i}_{run_id}")} for i in range(2)}
    manifest = TrainingManifest(run_id, config.to_dict(), nodes, {"name": "katoray-bytes"}, data_identity(None, "pydoc"))
    manifest.save(config.run_dir)
    learned = [[["In"], ["the"], ["beginning"]], [[pattern_name([["In"], ["the"]])], ["x"]]]
    for node, events in zip(nodes.values(), learned):
        kb = open_store(config.to_dict()["store"], node["kb_id"])
        kb.apply([PatternDelta(pattern_hash(events), events, 2)])
        kb.close()
    return learned


def test_serve_a_trained_run_as_nodes_node0_to_noden(tmp_path):
    learned = _trained_run(tmp_path, "demo-run")
    proc, first = _started("--run", "demo-run", "--runs-dir", str(tmp_path))
    try:
        assert "run demo-run (node0, node1)" in first, first
        url = re.search(r"on (http://\S+) ", first).group(1)
        for level, events in enumerate(learned):
            answer = requests.get(f"{url}/pattern/{pattern_name(events)}", params={"node_id": f"node{level}"},
                                  timeout=TIMEOUT_S).json()
            assert answer["pattern"]["pattern"]["frequency"] == 2
            assert answer["node_id"] == kb_id_for(f"node{level}_demo-run")
        session = requests.post(f"{url}/sessions", json={"node_id": "node0"}, timeout=TIMEOUT_S).json()
        for token in ("In", "the"):
            requests.post(f"{url}/sessions/{session['session_id']}/observe", json={"strings": [token]},
                          timeout=TIMEOUT_S)
        predicted = requests.get(f"{url}/sessions/{session['session_id']}/predictions", timeout=TIMEOUT_S).json()
        assert predicted["predictions"][0]["future"] == [["beginning"]]
    finally:
        assert "Traceback" not in _stop(proc)


def test_a_missing_run_or_an_unreachable_store_stops_start_up_with_one_message(tmp_path):
    missing = katoray("serve", "--run", "nope", "--runs-dir", str(tmp_path), "--port", "0")
    assert missing.returncode == 2 and "no run manifest" in missing.stderr and "Traceback" not in missing.stderr
    down = katoray("serve", "--store", "mongodb://127.0.0.1:9/", "--port", "0")
    assert down.returncode == 2 and down.stderr.count("\n") == 1 and "did not answer" in down.stderr


def test_every_interface_without_a_key_is_warned_about():
    proc, printed = _started("--host", "0.0.0.0")
    try:
        assert "WARNING" in printed and "without an API key" in printed
    finally:
        _stop(proc)
