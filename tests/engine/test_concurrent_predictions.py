"""Predictions racing writes in other threads of the same process see one state of the KB.

A writer thread cycles one knowledge base through three states (empty, every pattern, some
deleted) with atomic writes, while reader threads predict: every answer must be exactly the
answer for one of the three states, computed beforehand on private stores, and no prediction may
raise (before the fix: ``KeyError`` over SQLite, ``TypeError``/``KeyError`` over memory).
"""
from __future__ import annotations

import threading
import time

from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash
from katoray.engine.predict import predict
from katoray.store import kb_id_for, open_store
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore

RACE_S = 1.5
STMS = [[["a1"], ["b1"]], [["a1"]], [["a2"], ["b3"], ["c1"]]]


def _deltas() -> list[PatternDelta]:
    out = []
    for i in range(40):
        events = [[f"a{i % 7}"], [f"b{i % 5}"], [f"c{i % 3}"], [f"d{i}"]]
        out.append(PatternDelta(pattern_hash(events), events, 1 + i % 3, [{"joy": i / 40}], {"n": [str(i)]}))
    return out


def _answers(kb, config) -> list:
    return [(result.predictions, result.future_potentials)
            for result in (predict(kb, stm, config) for stm in STMS)]


def test_predictions_see_one_state_while_another_thread_learns_deletes_and_clears(store_url, node_id):
    config = SessionConfig(recall_threshold=0.1, max_predictions=5)
    deltas = _deltas()
    doomed = [d.name for d in deltas[::3]]
    full, thinned = MemoryStore(), MemoryStore()
    full.apply(deltas)
    thinned.apply(deltas)
    thinned.delete_patterns(doomed)
    expected = [_answers(MemoryStore(), config), _answers(full, config), _answers(thinned, config)]
    assert expected[1] != expected[2] != expected[0]

    kb = open_store(store_url, kb_id_for(node_id))
    deadline = time.monotonic() + RACE_S
    errors, unexpected, counts = [], [], {"writes": 0, "reads": 0}

    def write() -> None:
        while time.monotonic() < deadline:
            kb.apply(deltas)
            kb.delete_patterns(doomed)
            kb.clear()
            counts["writes"] += 1

    def read() -> None:
        while time.monotonic() < deadline:
            for i, stm in enumerate(STMS):   # each prediction alone sees one state
                try:
                    result = predict(kb, stm, config)
                except Exception as err:   # noqa: BLE001 - the test reports every kind of failure
                    errors.append(repr(err))
                    continue
                counts["reads"] += 1
                if (result.predictions, result.future_potentials) not in [answers[i] for answers in expected]:
                    unexpected.append((stm, result))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == [], f"{len(errors)} predictions failed, e.g. {errors[0]}"
        assert unexpected == [], f"{len(unexpected)} of {counts['reads']} answers match no state of the KB"
        assert counts["writes"] >= 2 and counts["reads"] >= 2
    finally:
        kb.clear()
        kb.close()
