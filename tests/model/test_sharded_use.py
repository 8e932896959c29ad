"""``katoray.open_run`` on a sharded run gives the unsharded run's answers: KATO's predictions
(names, every metric, order) at every level, next tokens, generated text, decoded patterns.

The same training file as ``tests.model.trained_run``'s run, trained again with shards
(3, 2, 1, 1) on the session's Ray; both runs are opened from their stores (no Ray).
"""
from __future__ import annotations

import pytest

import katoray
from katoray.jobs import TrainConfig, fingerprint, start_run
from katoray.store.sharded import ShardedStore
from tests.jobs import GPT2
from tests.model import trained_run

pytestmark = pytest.mark.ray
SHARDS = (3, 2, 1, 1)


@pytest.fixture(scope="module")
def runs(ray_session, tmp_path_factory, kjv_books_path):
    """(the unsharded run, the sharded run, the training file), both opened."""
    runs_dir, run_id, train, _ = trained_run(tmp_path_factory, kjv_books_path)
    sharded_dir = tmp_path_factory.mktemp("use-sharded")
    start_run(TrainConfig(data=str(train), tokenizer=str(GPT2), run_id="use-sharded", runs_dir=str(sharded_dir),
                          batch_size=4, workers=1, shards=SHARDS, verbose=False))
    assert fingerprint("use-sharded", sharded_dir) == fingerprint(run_id, runs_dir)
    with katoray.open_run(run_id, runs_dir=runs_dir) as whole, \
            katoray.open_run("use-sharded", runs_dir=sharded_dir) as sharded:
        yield whole, sharded, train


def _contexts(train) -> list[str]:
    from katoray.text.corpora import iter_local_documents

    docs = list(iter_local_documents(train))[:3]
    texts = [doc.text for doc in docs]
    return ["And God said", "the LORD", texts[0][:40], texts[1][:600], texts[2][200:1400]]


def test_the_levels_are_sharded_as_trained(runs):
    _, sharded, _ = runs
    assert [len(kb.shards) if isinstance(kb, ShardedStore) else 1 for kb in sharded.kbs] == list(SHARDS)


def test_predictions_equal_the_unsharded_run_s(runs):
    whole, sharded, train = runs
    compared = 0
    for context in _contexts(train):
        for level in (0, 1, 2):
            expected = whole.predict(context, level=level)
            assert sharded.predict(context, level=level) == expected, (context[:30], level)
            compared += len(expected)
    assert compared > 50      # real predictions, not empty lists compared


def test_next_tokens_generation_and_decoding_equal_the_unsharded_run_s(runs):
    whole, sharded, train = runs
    for context in _contexts(train):
        assert sharded.next_tokens(context, k=10) == whole.next_tokens(context, k=10)
        assert sharded.next_tokens(context, k=5, levels=1) == whole.next_tokens(context, k=5, levels=1)
    for seed in (0, 1):
        assert sharded.generate("In the beginning", max_tokens=30, seed=seed) == \
            whole.generate("In the beginning", max_tokens=30, seed=seed)
        assert sharded.generate(mode="sample", level=1, max_tokens=40, seed=seed) == \
            whole.generate(mode="sample", level=1, max_tokens=40, seed=seed)
    top = whole.predict(_contexts(train)[3], level=1)[0]["name"]
    assert sharded.decode(1, top) == whole.decode(1, top) and len(whole.decode(1, top)) > 20
    assert [level["patterns"] for level in sharded.stats()["levels"]] == \
        [level["patterns"] for level in whole.stats()["levels"]]
