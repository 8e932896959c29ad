"""Ray options per role, in one table, so every caller schedules the same way.

Measured on 2-core machines (reference/ray-notes.md): an actor that asks for a whole CPU can
starve Ray Data's read tasks and hang the pipeline silently, so every role here asks for a
fraction. ``num_cpus`` is a logical count used for scheduling, not a CPU pin.
"""
from __future__ import annotations

import math
from typing import Any

NAMESPACE_PREFIX = "katoray-"     # node actors of run <id> live in namespace katoray-<id>

NODE_NUM_CPUS = 0.25              # one node actor per level: mostly waiting on store writes
MAPPER_NUM_CPUS = 0.5             # one pool actor per worker: tokenizing and hashing, CPU-bound
READ_NUM_CPUS = 0.25              # one read task per shard: parsing files; differs from the
                                  # mapper's so Ray Data never fuses a read into one pool actor
DRIVER_NUM_CPUS = 1               # head room for the driver and Ray Data's scheduler

# Node actors restart forever and retry their calls: ``apply`` is idempotent by batch id and the
# constructor reopens the store, so a restarted node loses nothing that was acknowledged.
NODE_ACTOR_OPTIONS: dict[str, Any] = {
    "num_cpus": NODE_NUM_CPUS,
    "max_restarts": -1,
    "max_task_retries": -1,
}

# Shard actors of a sharded level go to different machines where the cluster has them: each
# shard's writes (CPU, and its SQLite file's disk) then add a machine's worth of throughput. Ray's
# SPREAD places each new actor on the least loaded node that fits it (best effort: on one machine,
# or with fewer machines than shards, they share); a placement group would reserve the CPUs up
# front and hold a run until the whole group fits, which an autoscaling cluster may never give.
SHARD_SCHEDULING = "SPREAD"

# Mapper pool (ray.data map_batches keyword arguments besides compute and the class).
MAPPER_OPTIONS: dict[str, Any] = {
    "num_cpus": MAPPER_NUM_CPUS,
    "batch_size": 1,              # one row = one batch of documents (the source groups them)
    "zero_copy_batch": True,
}

READ_OPTIONS: dict[str, Any] = {"num_cpus": READ_NUM_CPUS}


def namespace_for(run_id: str) -> str:
    """Ray namespace holding a run's named node actors."""
    return NAMESPACE_PREFIX + run_id


def node_actor_name(level: int, shard: int = 0, shards: int = 1) -> str:
    """Name of a node actor inside the run's namespace: ``node{level}`` for a level of one shard,
    ``node{level}s{shard}`` for each shard of a sharded level."""
    return f"node{level}" if shards == 1 else f"node{level}s{shard}"


def node_actor_options(run_id: str, level: int, detached: bool = False, shard: int = 0, shards: int = 1,
                       **overrides: Any) -> dict[str, Any]:
    """``.options(...)`` for a node actor: named, per-run namespace, re-attachable. The shards of
    a sharded level are spread over the cluster's machines (``SHARD_SCHEDULING``)."""
    options = dict(NODE_ACTOR_OPTIONS, name=node_actor_name(level, shard, shards), namespace=namespace_for(run_id),
                   get_if_exists=True)
    if shards > 1:
        options["scheduling_strategy"] = SHARD_SCHEDULING
    if detached:
        options["lifetime"] = "detached"   # outlives the driver; ray.kill it when done
    options.update(overrides)
    return options


def mapper_concurrency(num_workers: int) -> int:
    """Batches one pool actor maps at once, in threads. A pool actor waits for the node actors'
    acknowledgements after each batch: alone, it leaves its core idle meanwhile, so it maps a
    second batch in another thread (measured, KJV on 2 cores: 1 actor x 2 threads ends ~10%
    sooner than 1 x 1, and sooner than 2 x 1, which pays a second actor's start-up). With
    several actors the others fill the wait, and two threads each only contend for the GIL
    (2 x 2 ran ~7% slower than 2 x 1)."""
    return 2 if num_workers == 1 else 1


def cpus_needed(num_nodes: int, num_workers: int) -> float:
    """Logical CPUs a training run reserves: node actors (one per shard of each level) + pool +
    one read task + the driver."""
    return num_nodes * NODE_NUM_CPUS + num_workers * MAPPER_NUM_CPUS + READ_NUM_CPUS + DRIVER_NUM_CPUS


def local_num_cpus(num_nodes: int, num_workers: int) -> int:
    """Logical CPUs of a private local Ray started for such a run: what it reserves, rounded up,
    and at least 2."""
    return max(2, math.ceil(cpus_needed(num_nodes, num_workers)))
