"""A run made without Ray: the notebook's learner trains one KJV book into SQLite, with a manifest."""
from __future__ import annotations

import gzip
import json
from itertools import islice

import pytest

from katoray import HierarchicalConceptLearner, train_hierarchical_single_pass
from katoray.jobs import TrainingManifest


@pytest.fixture(scope="module")
def learner_run(tmp_path_factory, gpt2_dir, kjv_books_path):
    """(manifest, learner) of run ``small`` in a runs folder of its own (2 levels, chunks of 4)."""
    folder = tmp_path_factory.mktemp("runs") / "small"
    learner = HierarchicalConceptLearner(num_nodes=2, chunk_size=4, tokenizer_name=str(gpt2_dir),
                                         store=f"sqlite:///{folder}/kb", run_id="small")
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as f:
        train_hierarchical_single_pass([json.loads(line)["text"] for line in islice(f, 1)], learner)
    nodes = {f"node{i}": {"node_id": learner.node_id(i), "kb_id": kb.kb_id} for i, kb in enumerate(learner.kbs)}
    manifest = TrainingManifest("small", {"store": f"sqlite:///{folder}/kb", "chunk_sizes": [4, 4]}, nodes,
                                learner.token_processor.tokenizer.identity(), {"kind": "files"},
                                statistics={"node0_reuse_rate": 0.25})
    manifest.save(folder)
    return manifest, learner
