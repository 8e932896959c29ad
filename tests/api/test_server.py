"""KATO's routes and answer shapes, over real HTTP (spec §5)."""
from __future__ import annotations

from datetime import datetime

import pytest
import requests

from katoray import pattern_name
from katoray.api.server.kato_config import KATO_FILTER_DEFAULTS
from katoray.engine.config import SessionConfig

TIMEOUT_S = 10


@pytest.fixture
def api(kato_url):
    http = requests.Session()

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return http.request(method, kato_url + path, timeout=TIMEOUT_S, **kwargs)

    yield call
    http.close()


def _session(api, node_id: str = "node_s", **body) -> str:
    answer = api("POST", "/sessions", json={"node_id": node_id, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()["session_id"]


def test_session_lifecycle_has_kato_fields(api):
    created = api("POST", "/sessions", json={"node_id": "n1", "metadata": {"who": "t"}, "ttl_seconds": 60}).json()
    sid = created["session_id"]
    assert sid.startswith("session-") and created["node_id"] == "n1" and created["metadata"] == {"who": "t"}
    assert created["ttl_seconds"] == 60
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(created["created_at"])
    assert lifetime.total_seconds() == 60
    assert set(created["session_config"]) == set(SessionConfig().to_dict()) | set(KATO_FILTER_DEFAULTS)
    assert api("GET", f"/sessions/{sid}").json()["ttl_seconds"] in (59, 60)
    assert api("GET", f"/sessions/{sid}/exists").json() == {"exists": True, "expired": False, "session_id": sid}
    assert api("GET", "/sessions/count").json()["active_session_count"] >= 1
    assert api("POST", f"/sessions/{sid}/extend?ttl_seconds=120").json() == {
        "status": "extended", "session_id": sid, "ttl_seconds": 120}
    assert api("DELETE", f"/sessions/{sid}").json() == {"status": "deleted", "session_id": sid}
    assert api("GET", f"/sessions/{sid}/exists").json()["exists"] is False
    gone = api("POST", f"/sessions/{sid}/learn")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "SESSION_NOT_FOUND"
    assert api("GET", f"/sessions/{sid}").json() == {"detail": f"Session {sid} not found or expired"}


def test_observe_learn_predict_and_session_data(api):
    sid = _session(api)
    for event in (["b", "a"], ["c"], ["d"]):
        observed = api("POST", f"/sessions/{sid}/observe", json={"strings": event, "emotives": {"joy": 1.0}}).json()
    assert observed["status"] == "okay" and observed["stm_length"] == 3 and observed["time"] == 3
    assert api("GET", f"/sessions/{sid}/percept-data").json()["percept_data"] == {
        "strings": ["d"], "vectors": [], "emotives": {"joy": 1.0}, "path": [], "metadata": {}}
    learned = api("POST", f"/sessions/{sid}/learn").json()
    assert learned["status"] == "learned" and learned["pattern_name"] == pattern_name([["a", "b"], ["c"], ["d"]])
    assert api("POST", f"/sessions/{sid}/learn").json() == {"detail": "Cannot learn from empty STM"}
    api("POST", f"/sessions/{sid}/observe", json={"strings": ["a"]})
    api("POST", f"/sessions/{sid}/observe", json={"strings": ["c"]})
    answer = api("GET", f"/sessions/{sid}/predictions").json()
    assert answer["count"] == 1 and answer["predictions"][0]["emotives"] == {"joy": 1.0}
    cognition = api("GET", f"/sessions/{sid}/cognition-data").json()["cognition_data"]
    assert cognition["short_term_memory"] == [["a"], ["c"]] and cognition["symbols"] == ["a", "c"]
    assert cognition["predictions"] == answer["predictions"] and cognition["time"] == 5
    assert api("GET", f"/sessions/{sid}/stm").json() == {"stm": [["a"], ["c"]], "session_id": sid, "length": 2}
    assert api("POST", f"/sessions/{sid}/clear-stm").json() == {"status": "cleared", "session_id": sid}


def test_config_update_keeps_valid_keys_and_warns_about_the_rest(api):
    sid = _session(api, config={"recall_threshold": 0.3, "no_such_key": 1})
    body = {"config": {"max_pattern_length": 3, "stm_mode": "SIDEWAYS", "jaccard_threshold": 0.5,
                       "filter_pipeline": ["length"], "bogus": True, "fuzzy_token_threshold": 0.8}}
    updated = api("POST", f"/sessions/{sid}/config", json=body).json()
    assert updated["status"] == "okay" and len(updated["warnings"]) == 4
    config = api("GET", f"/sessions/{sid}/config").json()["config"]
    assert (config["recall_threshold"], config["max_pattern_length"], config["stm_mode"]) == (0.3, 3, "CLEAR")
    assert config["fuzzy_token_threshold"] == 0.8 and config["filter_pipeline"] == []
    refused = api("POST", f"/sessions/{sid}/config", json={"persistence": 0, "max_predictions": 5})
    assert refused.status_code == 400
    assert list(refused.json()["detail"]["validation_errors"]) == ["persistence"]
    assert api("GET", f"/sessions/{sid}/config").json()["config"]["max_predictions"] == 100   # nothing applied
    api("POST", f"/sessions/{sid}/config", json={"use_token_matching": False})   # KATO: sorting follows it
    assert api("GET", f"/sessions/{sid}/config").json()["config"]["sort_symbols"] is False


def test_patterns_are_found_by_query_or_kato_headers(api):
    sid = _session(api, node_id="test_headers")
    for symbol in ("x", "y"):
        api("POST", f"/sessions/{sid}/observe", json={"strings": [symbol]})
    name = api("POST", f"/sessions/{sid}/learn").json()["pattern_name"]
    for how in ({"params": {"node_id": "test_headers"}}, {"headers": {"x-test-id": "headers"}},
                {"headers": {"x-test-id": "test_headers"}}, {"headers": {"x-node-id": "test_headers"}}):
        answer = api("GET", f"/pattern/{name}", **how).json()
        assert answer["pattern"]["status"] == "okay" and answer["pattern"]["pattern"]["name"] == name, how
        assert answer["node_id"] == "test_headers_kato"
    missing = api("GET", f"/pattern/{name}").json()   # default_node: KATO answers 200, status error
    assert missing["pattern"] == {"status": "error", "message": f"Pattern {name} not found"}
    stats = api("GET", "/symbols/stats", params={"node_id": "test_headers"}).json()["symbols"]
    assert stats == {"x": {"frequency": 1, "pmf": 1}, "y": {"frequency": 1, "pmf": 1}}


def test_service_routes_have_kato_shapes(api):
    _session(api)
    health = api("GET", "/health").json()
    assert health["status"] == "healthy" and health["processor_status"] == "healthy"
    assert health["uptime_seconds"] > 0 and health["issues"] == [] and health["active_sessions"] >= 1
    assert {"metrics_collected", "last_collection", "timestamp", "service_name"} <= set(health)
    status = api("GET", "/status").json()
    assert status["sessions"]["active_sessions"] >= 1 and status["processors"]["total_processors"] >= 1
    metrics = api("GET", "/metrics").json()
    assert metrics["performance"]["total_requests"] >= 3 and metrics["performance"]["average_response_time"] > 0
    assert all(0 <= metrics["resources"][k] <= 100 for k in ("cpu_percent", "memory_percent", "disk_percent"))
    assert {"sessions", "databases", "rates", "processor_manager", "timestamp"} <= set(metrics)
    stats = api("GET", "/stats?minutes=5").json()
    assert stats["time_range_minutes"] == 5 and stats["time_series"]["kato_requests_total"]
    history = api("GET", "/metrics/response_time").json()
    assert history["statistics"]["count"] >= 3 and history["data_points"]
    assert api("GET", "/metrics/no_such_metric").status_code == 404
    assert api("GET", "/docs").status_code == 200
    assert "/sessions/{session_id}/observe" in api("GET", "/openapi.json").json()["paths"]


def test_an_api_key_guards_every_route(serve):
    url = serve(api_key="s3cret").url
    for path in ("/health", "/docs", "/openapi.json", "/sessions/count"):
        refused = requests.get(url + path, timeout=TIMEOUT_S)
        assert refused.status_code == 401 and "API key" in refused.json()["detail"]
    assert requests.get(url + "/health", headers={"X-API-Key": "wrong"}, timeout=TIMEOUT_S).status_code == 401
    assert requests.get(url + "/health", headers={"X-API-Key": "s3cret"}, timeout=TIMEOUT_S).status_code == 200
    assert requests.get(url + "/health", headers={"Authorization": "Bearer s3cret"},
                        timeout=TIMEOUT_S).status_code == 200
