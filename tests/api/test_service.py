"""The service layer with no HTTP: KATO's config-update rules, session expiry, refusals."""
from __future__ import annotations

import pytest

from katoray.api.server.kato_config import ConfigValidationError, effective_config, update_kato_config
from katoray.api.server.service import ApiError, KatoService
from katoray.api.server.sessions import SessionTable
from katoray.api.session import KatoSession
from katoray.engine.config import SessionConfig


def test_kato_config_updates_are_lenient_where_kato_is():
    config, warnings = update_kato_config(SessionConfig(), {
        "max_pattern_length": 4, "stm_mode": "rolling", "indexer_type": "LSH", "affinity_emotive": "joy",
        "rank_sort_algo": "weighted_snr", "minhash_bands": 5, "who_knows": 1, "sort": False})
    assert (config.max_pattern_length, config.stm_mode, config.sort_symbols) == (4, "ROLLING", False)
    assert (config.indexer_type, config.affinity_emotive, config.rank_sort_algo) == ("VI", None, "potential")
    assert len(warnings) == 5 and any("who_knows" in w for w in warnings)


def test_a_bad_value_fails_the_whole_update_naming_every_bad_key():
    with pytest.raises(ConfigValidationError) as caught:
        update_kato_config(SessionConfig(), {"recall_threshold": 2, "max_predictions": 0, "persistence": 7})
    assert set(caught.value.errors) == {"recall_threshold", "max_predictions"}
    with pytest.raises(ConfigValidationError, match="config"):
        update_kato_config(SessionConfig(), ["not", "a", "dict"])


def test_effective_config_lists_kato_s_keys():
    shown = effective_config(SessionConfig(recall_threshold=0.5))
    assert shown["recall_threshold"] == 0.5 and shown["minhash_num_hashes"] == 100 and shown["filter_pipeline"] == []


def test_sessions_expire_after_their_ttl_unless_used():
    now = [1000.0]
    table = SessionTable(clock=lambda: now[0])
    served = table.add(KatoSession("n", "memory://"), ttl_s=10, metadata={})
    now[0] += 9
    assert table.exists(served.session_id)          # does not extend
    assert table.get(served.session_id) is served   # extends to now + 10
    now[0] += 9.5
    assert table.get(served.session_id) is served
    now[0] += 10
    assert table.get(served.session_id) is None and not table.exists(served.session_id)
    assert table.count() == 0 and table.num_created == 1


def test_the_service_answers_kato_s_refusals():
    service = KatoService("memory://service-test")
    sid = service.create_session("n")["session_id"]
    with pytest.raises(ApiError) as caught:
        service.learn(sid)
    assert (caught.value.status, caught.value.body) == (400, {"detail": "Cannot learn from empty STM"})
    with pytest.raises(ApiError) as caught:
        service.observe(sid, {"strings": ["a"], "vectors": [[1.0], [1.0, 2.0]]})
    assert caught.value.status == 400 and "different lengths" in caught.value.body["detail"]
    with pytest.raises(ApiError) as caught:
        service.create_session("n", {"recall_threshold": -1})
    assert caught.value.body["detail"]["validation_errors"].keys() == {"recall_threshold"}
    with pytest.raises(ApiError) as caught:
        service.stm("session-nope")
    assert caught.value.body["error"]["code"] == "SESSION_NOT_FOUND"
