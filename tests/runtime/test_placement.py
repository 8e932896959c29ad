"""Shard actors spread over a cluster's machines, and the run is the same as on one machine.

A cluster of three raylets on this machine (``ray.cluster_utils.Cluster``, each with its own
CPUs) stands for three machines; it runs in a subprocess (``tests.runtime.cluster_run``): this
process already holds the session's Ray. The reference is the same corpus trained unsharded on
the session's one-node Ray.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from katoray.jobs import TrainConfig, fingerprint, start_run
from tests.jobs import GPT2, cli_env

REPO = Path(__file__).resolve().parents[2]
MACHINES = SHARDS = 3


@pytest.mark.ray
@pytest.mark.slow
def test_shards_land_on_different_machines_and_the_run_equals_a_one_node_run(ray_session, ten_books, tmp_path):
    done = subprocess.run([sys.executable, "-m", "tests.runtime.cluster_run", str(ten_books), str(tmp_path / "cluster"),
                           str(GPT2), "--machines", str(MACHINES), "--shards", str(SHARDS)],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(found["nodes"]) == MACHINES
    for level, nodes in enumerate(found["placement"]):
        assert len(nodes) == SHARDS and set(nodes) <= set(found["nodes"])
        assert len(set(nodes)) == SHARDS, f"node{level}'s shards share a machine: {nodes}"

    one_node = tmp_path / "one-node"
    start_run(TrainConfig(data=str(ten_books), tokenizer=str(GPT2), chunk_sizes=(4, 3, 3, 3), runs_dir=str(one_node),
                          run_id="one", workers=1, batch_size=1, verbose=False))
    assert found["fingerprint"] == fingerprint("one", one_node)
    assert found["fingerprint"]["node0"]["patterns"] > 1000
