"""Session configuration as KATO's HTTP API takes it: lenient where KATO is, strict where it is.

``SessionConfig`` (``katoray.engine.config``) refuses unknown keys, as every katoray config does.
KATO's ``POST /sessions/{id}/config`` and ``POST /sessions`` are looser, and clients depend on
it (spec §5.1, ``configuration_service.validate_configuration_update``):

- a known key with a bad value fails the whole update: 400 naming each bad key, nothing changes;
- an unknown key is ignored (KATO logs a warning; here the warning is also in the response);
- an ``stm_mode`` that is not CLEAR or ROLLING becomes CLEAR;
- ``use_token_matching`` sent without ``sort_symbols`` sets ``sort_symbols`` to the same value
  (token matching needs sorted events, character matching unsorted ones).

Keys KATO has but katoray does not implement are ignored with a warning at non-default values
(the candidate filter pipeline and its parameters, other vector indexers, affinity weighting),
so a bad or unsupported key never drops the valid keys sent with it. ``session_config`` in
responses lists KATO's full set of keys with their effective values.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from katoray.engine.config import STM_MODES, SessionConfig
from katoray.errors import ConfigError

# KATO's candidate filter settings (defaults from its configuration service). They only act
# through ``filter_pipeline``, which katoray keeps empty, so their values change nothing.
KATO_FILTER_DEFAULTS: dict[str, Any] = {
    "length_min_ratio": 0.5, "length_max_ratio": 2.0, "jaccard_threshold": 0.3, "jaccard_min_overlap": 2,
    "minhash_threshold": 0.7, "minhash_bands": 20, "minhash_rows": 5, "minhash_num_hashes": 100,
    "bloom_false_positive_rate": 0.01, "max_candidates_per_stage": 100000, "enable_filter_metrics": True,
}
KATO_INDEXERS = ("VI", "LSH", "ANNOY", "FAISS")
KATO_FILTERS = ("minhash", "length", "jaccard", "bloom", "rapidfuzz")
WEIGHTED_RANKS = ("weighted_similarity", "weighted_evidence", "weighted_confidence", "weighted_snr")
_ALIASES = {"sort": "sort_symbols"}
_FIELDS = {f.name: f.default for f in dataclasses.fields(SessionConfig)}


class ConfigValidationError(ConfigError):
    """Known keys with bad values: ``errors`` maps each key to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.errors = errors


def update_kato_config(config: SessionConfig, values: Mapping[str, Any]) -> tuple[SessionConfig, list[str]]:
    """``config`` with KATO's update ``values`` applied, and the warnings for what was ignored.

    Raises:
        ConfigValidationError: a known key has a bad value (nothing is applied).
    """
    if not isinstance(values, Mapping):
        raise ConfigValidationError({"config": f"must be an object of config keys, got {type(values).__name__}"})
    values = dict(values)
    if isinstance(values.get("use_token_matching"), bool) and not {"sort_symbols", "sort"} & values.keys():
        values["sort_symbols"] = values["use_token_matching"]
    accepted: dict[str, Any] = {}
    errors: dict[str, str] = {}
    warnings: list[str] = []
    for key, value in values.items():
        name = _ALIASES.get(key, key)
        if name == "stm_mode" and isinstance(value, str) and value.upper() not in STM_MODES:
            warnings.append(f"{key}: {value!r} is neither CLEAR nor ROLLING; CLEAR is used (as KATO does)")
            value = "CLEAR"
        if name in _FIELDS:
            warning = _unsupported(name, value)
            if warning:
                warnings.append(f"{key}: {warning}")
                continue
            try:
                SessionConfig().updated({name: value})
            except ConfigError as err:
                errors[key] = str(err)
                continue
            accepted[name] = value
        elif key in KATO_FILTER_DEFAULTS:
            warnings.append(f"{key}: a setting of KATO's candidate filter pipeline, which katoray does not have; "
                            "ignored")
        else:
            warnings.append(f"unknown config key {key!r}: ignored")
    if errors:
        raise ConfigValidationError(errors)
    return config.updated(accepted), warnings


def _unsupported(name: str, value: Any) -> str | None:
    """Why a valid KATO value cannot be honoured here (it is then ignored), or None."""
    if name == "indexer_type" and value in KATO_INDEXERS and value != "VI":
        return f"vector indexer {value!r} is not available in katoray (it uses VI); ignored"
    if name == "filter_pipeline" and isinstance(value, (list, tuple)) and value \
            and all(item in KATO_FILTERS for item in value):
        return "katoray scores every candidate exactly and has no filter pipeline; ignored"
    if name == "affinity_emotive" and value is not None:
        return "affinity-weighted matching is not available in katoray; ignored"
    if name == "rank_sort_algo" and value in WEIGHTED_RANKS:
        return f"{value!r} needs affinity_emotive, which katoray does not support; ignored"
    return None


def effective_config(config: SessionConfig) -> dict[str, Any]:
    """Every key of KATO's effective session config with its value (``session_config``)."""
    return {**config.to_dict(), **KATO_FILTER_DEFAULTS}
