"""A sharded run on a Ray cluster of several machines, simulated on this one: ``ray.cluster_utils.Cluster``
starts a head and ``--machines - 1`` more raylets, each with its own CPUs. Prints one JSON line: the
Ray node of every shard actor of each level (asked at the run's first checkpoint), the cluster's
nodes, and the run's fingerprint.

    python -m tests.runtime.cluster_run CORPUS RUNS_DIR TOKENIZER --machines 3 --shards 3

(``tests/runtime/test_placement.py`` runs it in a subprocess: a test process holds one Ray only.)
"""
from __future__ import annotations

import argparse
import json

MACHINE_CPUS = 2                    # logical CPUs per simulated machine
OBJECT_STORE_BYTES = 100 * 1024**2  # per raylet (the minimum is 75 MiB)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("corpus", "runs_dir", "tokenizer"):
        parser.add_argument(name)
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument("--shards", type=int, default=3)
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from katoray.jobs import Checkpoint, TrainConfig, fingerprint, start_run
    from katoray.runtime.node import attach_shards

    node_args = {"num_cpus": MACHINE_CPUS, "object_store_memory": OBJECT_STORE_BYTES}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    for _ in range(args.machines - 1):
        cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    config = TrainConfig(data=args.corpus, tokenizer=args.tokenizer, chunk_sizes=(4, 3, 3, 3), runs_dir=args.runs_dir,
                         run_id="cluster", shards=args.shards, workers=1, batch_size=1, checkpoint_interval=2,
                         verbose=False)
    placement: list[list[str]] = []
    save = Checkpoint.save

    def save_and_look(self, run_dir):        # the shard actors are up and working by the first checkpoint
        save(self, run_dir)
        if not placement:
            for level in attach_shards("cluster", config.shards):
                placement.append([info["ray_node"] for info in ray.get([h.ready.remote() for h in level])])

    Checkpoint.save = save_and_look
    try:
        stats = start_run(config)
        print(json.dumps({"placement": placement, "nodes": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]),
                          "fingerprint": fingerprint("cluster", args.runs_dir),
                          "samples": stats["samples_processed"]}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
