"""Many clients at once on shared nodes: every request answered 200, no learn lost.

Learners on one node each learn one shared pattern and their own; predictors ask all along, and
on a second node clear-all races learns and predictions. Afterwards the store is counted: the
shared pattern's frequency must be the number of learns of it, and every own pattern is there.
"""
from __future__ import annotations

import threading

import requests

from katoray import pattern_name

LEARNERS, PREDICTORS, ROUNDS = 6, 3, 15
TIMEOUT_S = 30


def _session(url: str, node_id: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    answer = http.post(url + "/sessions", json={"node_id": node_id}, timeout=TIMEOUT_S)
    answer.raise_for_status()
    return http, f"{url}/sessions/{answer.json()['session_id']}"


def test_shared_nodes_under_many_clients_answer_everything_and_lose_no_learn(serve, tmp_path):
    url = serve(store=f"sqlite:///{tmp_path}/kb").url
    failures: list[str] = []
    done = threading.Event()

    def call(http: requests.Session, method: str, path: str, **kwargs) -> dict:
        try:
            answer = http.request(method, path, timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as err:
            failures.append(f"{method} {path}: {type(err).__name__}")
            return {}
        if answer.status_code != 200:
            failures.append(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
        return answer.json()

    def learn(events: list[list[str]], http, base) -> None:
        for event in events:
            call(http, "POST", base + "/observe", json={"strings": event})
        call(http, "POST", base + "/learn")

    def learner(k: int) -> None:
        http, base = _session(url, "shared")
        for r in range(ROUNDS):
            learn([["s1"], ["s2"], ["s3"]], http, base)
            learn([[f"own{k}"], [f"round{r}"]], http, base)

    def predictor(node_id: str) -> None:
        http, base = _session(url, node_id)
        call(http, "POST", base + "/observe", json={"strings": ["s1"]})
        call(http, "POST", base + "/observe", json={"strings": ["s2"]})
        while not done.is_set():
            call(http, "GET", base + "/predictions")

    def clearer() -> None:
        http, base = _session(url, "cleared")
        while not done.is_set():
            learn([["s1"], ["s2"]], http, base)
            call(http, "POST", base + "/clear-all")

    workers = [threading.Thread(target=learner, args=(k,)) for k in range(LEARNERS)]
    side = ([threading.Thread(target=predictor, args=(node,)) for node in ("shared", "cleared", "shared")]
            + [threading.Thread(target=clearer)])
    for thread in workers + side:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    for thread in side:
        thread.join()

    assert failures == []
    http, _ = _session(url, "shared")
    shared = http.get(f"{url}/pattern/{pattern_name([['s1'], ['s2'], ['s3']])}", params={"node_id": "shared"},
                      timeout=TIMEOUT_S).json()["pattern"]["pattern"]
    assert shared["frequency"] == LEARNERS * ROUNDS
    for k in range(LEARNERS):
        for r in range(ROUNDS):
            own = http.get(f"{url}/pattern/{pattern_name([[f'own{k}'], [f'round{r}']])}",
                           params={"node_id": "shared"}, timeout=TIMEOUT_S).json()["pattern"]
            assert own["status"] == "okay" and own["pattern"]["frequency"] == 1
