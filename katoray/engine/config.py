"""KATO session configuration: typed, validated, recorded.

Keys and defaults are KATO's (spec §5.1). Unlike KATO, every key here is honoured per session,
including ``persistence``, ``sort_symbols`` and ``rank_sort_algo`` (KATO silently uses process
defaults for those three). An unknown key or an out-of-range value raises ``ConfigError`` (a
``ValueError``) naming the key.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from katoray.errors import ConfigError

STM_MODES = ("CLEAR", "ROLLING")

# Fields a prediction can be ranked by (KATO's list, spec §4.6).
RANK_SORT_ALGOS = (
    "potential", "similarity", "evidence", "confidence", "snr", "fragmentation", "frequency",
    "normalized_entropy", "global_normalized_entropy", "itfdf_similarity", "confluence",
    "predictive_information", "bayesian_posterior", "bayesian_prior", "bayesian_likelihood",
    "tfidf_score",
)

# KATO keys katoray accepts only at their default (features not built yet); a different value
# is refused rather than silently ignored.
_DEFAULT_ONLY = {
    "indexer_type": "VI",
    "affinity_emotive": None,
    "filter_pipeline": (),
}

_ALIASES = {"sort": "sort_symbols"}


@dataclass(frozen=True)
class SessionConfig:
    """One KATO session's settings (spec §5.1)."""

    max_pattern_length: int = 0       # events in STM that trigger auto-learn; 0 = manual learn only
    stm_mode: str = "CLEAR"           # after auto-learn: CLEAR empties STM, ROLLING keeps the last n-1 events
    recall_threshold: float = 0.1     # minimum similarity in [0, 1] for a pattern to be predicted
    max_predictions: int = 100        # predictions returned, 1..10000
    persistence: int = 5              # emotive dicts kept per pattern (rolling window), 1..100
    sort_symbols: bool = True         # sort the symbols inside each event (KATO always does)
    rank_sort_algo: str = "potential" # prediction field to rank by, descending
    process_predictions: bool = True  # accepted for compatibility; predictions are computed on demand
    use_token_matching: bool = True   # similarity over tokens (LCS) instead of joined characters
    indexer_type: str = "VI"
    fuzzy_token_threshold: float = 0.0  # in (0, 1]: tokens this similar (RapidFuzz ratio) count as matches; 0 = off
    affinity_emotive: str | None = None
    filter_pipeline: tuple = field(default=())

    def __post_init__(self) -> None:
        _check_int(self, "max_pattern_length", 0, None)
        _check_int(self, "max_predictions", 1, 10000)
        _check_int(self, "persistence", 1, 100)
        _check_number(self, "recall_threshold", 0.0, 1.0)
        _check_number(self, "fuzzy_token_threshold", 0.0, 1.0)
        for key in ("sort_symbols", "process_predictions", "use_token_matching"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"config key {key!r} must be true or false, got {getattr(self, key)!r}")
        if self.stm_mode not in STM_MODES:
            raise ConfigError(f"config key 'stm_mode' must be one of {STM_MODES}, got {self.stm_mode!r}")
        if self.rank_sort_algo not in RANK_SORT_ALGOS:
            raise ConfigError(
                f"config key 'rank_sort_algo' must be one of {', '.join(RANK_SORT_ALGOS)}; "
                f"got {self.rank_sort_algo!r}")
        for key, default in _DEFAULT_ONLY.items():
            value = getattr(self, key)
            if (tuple(value) if key == "filter_pipeline" else value) != default:
                raise ConfigError(
                    f"config key {key!r}={value!r} is not supported by katoray's engine yet; "
                    f"leave it at {default!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "SessionConfig":
        """Build from a KATO-style dict; unknown keys are an error naming the key."""
        return cls().updated(values or {})

    def updated(self, values: Mapping[str, Any]) -> "SessionConfig":
        """A copy with ``values`` applied (validated as a whole)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"session config must be a dict of KATO config keys, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            key = _ALIASES.get(key, key)
            if key not in known:
                raise ConfigError(f"unknown session config key {key!r}; known keys: {', '.join(sorted(known))}")
            if key == "filter_pipeline" and value is not None:
                value = tuple(value)
            if key == "stm_mode" and isinstance(value, str):
                value = value.upper()
            clean[key] = value
        return dataclasses.replace(self, **clean)

    def to_dict(self) -> dict[str, Any]:
        """Every key with its effective value (as KATO's ``GET /config`` shows)."""
        out = dataclasses.asdict(self)
        out["filter_pipeline"] = list(self.filter_pipeline)
        return out


def _check_int(cfg: SessionConfig, key: str, low: int, high: int | None) -> None:
    value = getattr(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"config key {key!r} must be {bound}, got {value}")


def _check_number(cfg: SessionConfig, key: str, low: float, high: float) -> None:
    value = getattr(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"config key {key!r} must be between {low} and {high}, got {value}")
