"""Actors dying mid-run: Ray restarts them and the run still ends exactly as an uninterrupted one.

A run trains in a thread of this process (the session's Ray); once its checkpoint lists a few
batches, a level's ``NodeActor`` is killed with ``ray.kill(no_restart=False)`` (Ray restarts it
and retries its calls: ``apply`` is idempotent by batch id), or a mapper pool actor's process is
SIGKILLed (Ray Data restarts it and re-runs its batch). Equal fingerprints: nothing lost, nothing
counted twice.
"""
from __future__ import annotations

import os
import signal
import threading

import pytest

from katoray.jobs import TrainConfig, fingerprint, start_run
from tests.jobs import GPT2, cmdline, corpus, descendants, reference_fingerprint, wait_for_checkpoint

BOOKS_UNDER = 20_000
MAPPER_TITLE = "ray::MapWorker(MapBatches(HierarchyMapper))"

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def books(tmp_path_factory, kjv_books_path):
    return corpus(tmp_path_factory, kjv_books_path, BOOKS_UNDER)


def train_and_strike(books, runs_dir, run_id, strike) -> dict:
    """Train in a thread; call ``strike(run_id)`` once 3 batches are checkpointed; return stats."""
    config = TrainConfig(data=str(books), tokenizer=str(GPT2), batch_size=1, checkpoint_interval=1, run_id=run_id,
                         runs_dir=str(runs_dir), verbose=False)
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["stats"] = start_run(config)
        except BaseException as err:   # re-raised below, in the test's thread
            outcome["error"] = err

    thread = threading.Thread(target=train)
    thread.start()
    try:
        at_strike = wait_for_checkpoint(runs_dir / run_id, 3)
        outcome["struck"] = strike(run_id)
        outcome["completed_at_strike"] = at_strike["num_completed_batches"]
    finally:
        thread.join(timeout=300)
    if "error" in outcome:
        raise outcome["error"]
    return outcome


def test_node_actor_killed_mid_run(ray_session, books, tmp_path, tmp_path_factory):
    import ray

    expected = reference_fingerprint(tmp_path_factory, data=str(books), tokenizer=str(GPT2), batch_size=1)

    def kill_node1(run_id: str) -> int:
        node = ray.get_actor("node1", namespace=f"katoray-{run_id}")
        pid = ray.get(node.ready.remote())["pid"]
        ray.kill(node, no_restart=False)          # a crash: Ray restarts it (max_restarts=-1)
        return pid

    outcome = train_and_strike(books, tmp_path, "node-killed", kill_node1)
    assert outcome["completed_at_strike"] < 29 and outcome["struck"] > 0
    assert outcome["stats"]["status"] == "finished" and outcome["stats"]["samples_processed"] == 29
    assert fingerprint("node-killed", tmp_path) == expected


def test_mapper_actor_killed_mid_run(ray_session, books, tmp_path, tmp_path_factory):
    expected = reference_fingerprint(tmp_path_factory, data=str(books), tokenizer=str(GPT2), batch_size=1)

    def kill_a_mapper(run_id: str) -> int:
        mappers = [pid for pid in descendants(os.getpid()) if cmdline(pid).startswith(MAPPER_TITLE)]
        assert mappers, "no mapper actor process found under this test's Ray"
        os.kill(mappers[0], signal.SIGKILL)
        return mappers[0]

    outcome = train_and_strike(books, tmp_path, "mapper-killed", kill_a_mapper)
    assert outcome["completed_at_strike"] < 29
    assert outcome["stats"]["status"] == "finished" and outcome["stats"]["samples_processed"] == 29
    assert fingerprint("mapper-killed", tmp_path) == expected
