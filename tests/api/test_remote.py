"""A remote KATO server (``katoray serve``) behind RemoteKatoSession and a learner's base_url."""
from __future__ import annotations

import pytest
import requests

from katoray import HierarchicalConceptLearner, HierarchicalNode, KatoSession, pattern_name, train_hierarchical_single_pass
from katoray.errors import StoreUnreachableError
from katoray.api.remote import RemoteKatoError, RemoteKatoSession


def test_remote_session_behaves_like_a_local_one(kato_url):
    remote = RemoteKatoSession(kato_url, "nodeR", {"recall_threshold": 0.1})
    local = KatoSession("nodeL", "memory://")
    for s in (remote, local):
        for event in (["a", "b"], ["c"], ["d"]):
            s.observe(strings=event, emotives={"joy": 0.5})
        assert s.learn() == pattern_name([["a", "b"], ["c"], ["d"]])
        s.observe(strings=["a"])
        s.observe(strings=["c"])
        assert s.get_stm() == [["a"], ["c"]]
    assert remote.get_predictions() == local.get_predictions()
    assert remote.get_pattern(pattern_name([["a", "b"], ["c"], ["d"]]))["emotives"] == [{"joy": 0.5}] * 3
    seq = remote.observe_sequence([{"strings": ["x"]}, {"strings": ["y"]}], learn_at_end=True)
    assert seq["final_learned_pattern"] == pattern_name([["a"], ["c"], ["x"], ["y"]])
    remote.clear_stm()
    assert remote.learn() == "" and remote.get_pattern("PTRN|" + "0" * 40) is None


def test_remote_errors_are_clear(kato_url):
    with pytest.raises(RemoteKatoError, match="recall_threshold"):
        RemoteKatoSession(kato_url, "n", {"recall_threshold": 7})
    s = RemoteKatoSession(kato_url, "n")
    with pytest.raises(RemoteKatoError, match="422.*strings"):
        s.observe(strings=["ok", 3])
    assert requests.post(f"{kato_url}/sessions/nope/learn", timeout=5).status_code == 404
    with pytest.raises(StoreUnreachableError, match="127.0.0.1:9"):
        RemoteKatoSession("http://127.0.0.1:9", "n", timeout_s=2)


def test_learner_trains_through_a_remote_node(kato_url, gpt2_dir):
    text = "In the beginning God created the heaven and the earth. And the earth was without form, and void."
    nodes = [HierarchicalNode("node0", chunk_size=4), HierarchicalNode("node1", chunk_size=3, base_url=kato_url)]
    remote = HierarchicalConceptLearner(nodes=nodes, tokenizer_name=str(gpt2_dir), store="memory://")
    local = HierarchicalConceptLearner(nodes=[HierarchicalNode("node0", chunk_size=4), HierarchicalNode("node1", chunk_size=3)],
                                       tokenizer_name=str(gpt2_dir), store="memory://")
    r_stats = train_hierarchical_single_pass([text], remote)
    l_stats = train_hierarchical_single_pass([text], local)
    assert r_stats["node1_observations"] == l_stats["node1_observations"] > 0 and r_stats["node1_patterns"] is None
    assert list(remote.kbs[0].iter_patterns()) == list(local.kbs[0].iter_patterns())
    for record in local.kbs[1].iter_patterns():
        assert remote.nodes["node1"].get_pattern(record.name)["frequency"] == record.frequency


def test_the_learners_base_url_puts_every_uniform_node_on_the_server(kato_url):
    # kato-lm's HierarchicalConceptLearner(base_url=...) without nodes: one KATO server for all levels.
    learner = HierarchicalConceptLearner(num_nodes=2, chunk_size=3, base_url=kato_url)
    assert learner.is_remote and [cfg.base_url for cfg in learner.node_configs] == [kato_url, kato_url]
    assert all(isinstance(session, RemoteKatoSession) for session in learner.nodes.values())
