"""NodeActor: idempotent applies, KATO's session methods, named re-attachment, restart safety."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from katoray.engine.naming import pattern_hash, pattern_name
from katoray.errors import ConfigError
from katoray.runtime.node import attach_nodes, start_nodes, stop_nodes
from katoray.store.wire import encode_deltas
from katoray.store import PatternDelta


def deltas_abc() -> list[PatternDelta]:
    events_ab = [["a"], ["b"]]
    events_bc = [["b"], ["c"]]
    return [PatternDelta(pattern_hash(events_ab), events_ab, 3, [], {"source": ["x.txt"]}),
            PatternDelta(pattern_hash(events_bc), events_bc, 1)]


def test_a_training_node_loads_little(tmp_path):
    # A node actor is a new process in every run: what it imports is start-up CPU paid per level.
    script = f"""
import sys
from katoray.runtime.node import NodeActor
from katoray.store.wire import encode_deltas
from tests.runtime.test_node_actor import deltas_abc
node = NodeActor("sqlite:///{tmp_path}", "node0")
assert node.apply_counted("b1", encode_deltas(deltas_abc()))["new_patterns"] == 2
heavy = [m for m in ("numpy", "ray", "katoray.text", "katoray.compat", "katoray.runtime.driver")
         if m in sys.modules]
print(heavy)
node.observe(["a"]); node.observe(["b"])
print(len(node.get_predictions()), "numpy" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "2 True"]   # ab and bc; numpy came with predicting


@pytest.fixture
def run_id() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.mark.ray
def test_apply_is_idempotent_by_batch_id(ray_session, tmp_path, run_id):
    import ray

    node, = start_nodes(run_id, f"sqlite:///{tmp_path}/kb", ["node0"], [{}])
    try:
        payload = encode_deltas(deltas_abc())
        assert ray.get(node.apply.remote("run/b1", payload)) is True
        assert ray.get(node.apply.remote("run/b1", payload)) is False     # a retry changes nothing
        assert ray.get(node.is_applied.remote("run/b1")) and not ray.get(node.is_applied.remote("run/b2"))
        stats = ray.get(node.stats.remote())
        assert stats["patterns"] == 2 and stats["total_symbols_in_patterns_frequencies"] == 2 * 3 + 2 * 1
        # the actor's own process: it imported numpy and opened SQLite, so it used CPU and memory
        assert stats["cpu_seconds"] > 0 and stats["peak_rss_mb"] > 20
        record = ray.get(node.get_pattern.remote(pattern_hash([["a"], ["b"]])))
        assert record["frequency"] == 3 and record["metadata"] == {"source": ["x.txt"]}
    finally:
        stop_nodes([node])


@pytest.mark.ray
def test_node_actor_serves_a_kato_session(ray_session, tmp_path, run_id):
    import ray

    node, = start_nodes(run_id, f"sqlite:///{tmp_path}/kb", ["node0"], [{"recall_threshold": 0.1}])
    try:
        for symbol in ("hello", "world"):
            ray.get(node.observe.remote(strings=[symbol]))
        assert ray.get(node.get_stm.remote()) == [["hello"], ["world"]]
        name = ray.get(node.learn.remote())
        assert name == pattern_name([["hello"], ["world"]])
        assert ray.get(node.get_stm.remote()) == []                      # learn clears STM
        ray.get(node.observe_sequence.remote([{"strings": ["hello"]}]))
        predictions = ray.get(node.get_predictions.remote())
        assert [p["name"] for p in predictions] == [name.removeprefix("PTRN|")]
        assert predictions[0]["future"] == ["world"]   # one symbol in STM: KATO's flat single-symbol path
        ray.get(node.clear_stm.remote())
        assert ray.get(node.get_stm.remote()) == []
    finally:
        stop_nodes([node])


@pytest.mark.ray
def test_attach_nodes_by_run_id(ray_session, tmp_path, run_id):
    import ray

    store = f"sqlite:///{tmp_path}/kb"
    started = start_nodes(run_id, store, ["node0", "node1"], [{}, {}], detached=True)   # outlive their driver
    try:
        attached = attach_nodes(run_id)                     # all levels found
        assert [ray.get(h.ready.remote())["kb_id"] for h in attached] == ["node0_kato", "node1_kato"]
        assert len(attach_nodes(run_id, 1)) == 1
        again = start_nodes(run_id, store, ["node0", "node1"], [{}, {}])   # get_if_exists: same actors
        assert [ray.get(h.ready.remote())["pid"] for h in again] == [ray.get(h.ready.remote())["pid"] for h in started]
        with pytest.raises(ConfigError, match="already has node actors"):
            start_nodes(run_id, store, ["other0"], [{}])
        with pytest.raises(ValueError, match="node2"):
            attach_nodes(run_id, 3)
    finally:
        stop_nodes(started)
    with pytest.raises(ValueError, match=run_id):
        attach_nodes(run_id)


@pytest.mark.ray
def test_restarted_node_keeps_what_it_acknowledged(ray_session, tmp_path, run_id):
    import ray

    node, = start_nodes(run_id, f"sqlite:///{tmp_path}/kb", ["node0"], [{}])
    try:
        payload = encode_deltas(deltas_abc())
        assert ray.get(node.apply.remote("run/b1", payload))
        pid = ray.get(node.ready.remote())["pid"]
        ray.kill(node, no_restart=False)                    # a crash: Ray restarts it (max_restarts=-1)
        deadline = time.monotonic() + 60
        while ray.get(node.ready.remote(), timeout=60)["pid"] == pid:   # the kill lands asynchronously
            assert time.monotonic() < deadline, "the node actor was not restarted"
            time.sleep(0.1)
        assert ray.get(node.apply.remote("run/b1", payload)) is False   # the replay is recognised
        assert ray.get(node.stats.remote())["patterns"] == 2
    finally:
        stop_nodes([node])
