"""Nodes with a ``base_url`` train with the parallel trainer: their node actors write each level's
merged counts to the KATO server (``katoray serve``, through ``kato+http://``), exactly once, and
the server's knowledge bases equal the sequential reference."""
from __future__ import annotations

import pytest

from katoray.api.server.run import ServeSettings, start_server
from katoray.errors import ConfigError
from katoray.hierarchy.config import HierarchicalNode
from katoray.store import kb_id_for, open_store
from katoray.text.corpora import iter_local_documents
from tests.runtime.test_parallel_training import corpus, nodes, preparers, reference, state, train  # noqa: F401


@pytest.mark.ray
def test_nodes_with_a_base_url_train_in_parallel_into_the_server(ray_session, corpus, gpt2_dir, preparers,  # noqa: F811
                                                                  tmp_path):
    ref_kbs, acc = reference(iter_local_documents(corpus), preparers("simple", "chunking"))
    served = f"sqlite:///{tmp_path}/served"
    with start_server(ServeSettings(port=0, store=served)) as server:
        remote = [HierarchicalNode(n.name, chunk_size=n.chunk_size, base_url=server.url) for n in nodes()]
        stats = train(corpus, gpt2_dir, None, nodes=remote, num_workers=2, batch_size=2)
        for level, want in enumerate(ref_kbs):
            assert state(open_store(served, kb_id_for(f"node{level}"))) == state(want), f"node{level}"
    assert stats["store"] == "kato+" + server.url
    assert [stats[f"node{i}_patterns"] for i in range(len(ref_kbs))] == [kb.count() for kb in ref_kbs]


def test_nodes_on_different_servers_are_refused(corpus, gpt2_dir):  # noqa: F811
    mixed = [HierarchicalNode("node0", base_url="http://127.0.0.1:1"), HierarchicalNode("node1")]
    with pytest.raises(ConfigError, match="same KATO server"):
        train(corpus, gpt2_dir, None, nodes=mixed, num_levels=2)
