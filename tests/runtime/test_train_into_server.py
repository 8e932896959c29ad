"""Nodes with a ``base_url`` train with the parallel trainer: their node actors write each level's
merged counts to the KATO server (``katoray serve``, through ``kato+http://``), exactly once, and
the server's knowledge bases equal the sequential reference."""
from __future__ import annotations

import pytest

from katoray.api.server.run import ServeSettings, start_server
from katoray.compat.nodes import HierarchicalNode
from katoray.compat.notebook import train_from_streaming_dataset_parallel
from katoray.errors import ConfigError
from katoray.runspec import node_id
from katoray.store import kb_id_for, open_store
from katoray.text.corpora import iter_local_documents
from tests.runtime.test_parallel_training import METADATA_CAP, corpus, nodes, preparers, reference, state  # noqa: F401


def _train(corpus, gpt2_dir, tmp_path, remote, **kwargs) -> dict:  # noqa: F811
    return train_from_streaming_dataset_parallel(data=str(corpus), nodes=remote, num_levels=len(remote),
                                                 tokenizer=str(gpt2_dir), metadata_cap=METADATA_CAP, verbose=False,
                                                 checkpoint_dir=str(tmp_path / "runs"), **kwargs)


@pytest.mark.ray
def test_nodes_with_a_base_url_train_in_parallel_into_the_server(ray_session, corpus, gpt2_dir, preparers,  # noqa: F811
                                                                  tmp_path):
    ref_kbs, acc = reference(iter_local_documents(corpus), preparers("simple", "chunking"))
    served = f"sqlite:///{tmp_path}/served"
    with start_server(ServeSettings(port=0, store=served)) as server:
        remote = [HierarchicalNode(n.name, chunk_size=n.chunk_size, base_url=server.url) for n in nodes()]
        stats = _train(corpus, gpt2_dir, tmp_path, remote, num_workers=2, batch_size=2)
        for level, want in enumerate(ref_kbs):
            got = open_store(served, kb_id_for(node_id(level, stats["run_id"])))   # the server's name for it
            assert state(got) == state(want), f"node{level}"
    assert [stats[f"node{i}_patterns"] for i in range(len(ref_kbs))] == [kb.count() for kb in ref_kbs]


def test_nodes_on_different_servers_are_refused(corpus, gpt2_dir, tmp_path):  # noqa: F811
    mixed = [HierarchicalNode("node0", base_url="http://127.0.0.1:1"), HierarchicalNode("node1")]
    with pytest.raises(ConfigError, match="same KATO server"):
        _train(corpus, gpt2_dir, tmp_path, mixed)
