"""Observations: validation and the event they add to short-term memory (spec §2.1-§2.2).

Validation happens before anything changes, so a bad observation leaves the session and the
knowledge base exactly as they were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from katoray.engine.naming import vector_name
from katoray.errors import ConfigError

_FIELDS = ("strings", "vectors", "emotives", "metadata", "unique_id")


@dataclass(frozen=True)
class Observation:
    """One validated observation."""

    strings: tuple[str, ...] = ()
    vectors: tuple[tuple[float, ...], ...] = ()
    emotives: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    unique_id: str | None = None

    @property
    def has_symbols(self) -> bool:
        return bool(self.strings or self.vectors)

    def event(self, sort_symbols: bool) -> list[str]:
        """VCTR symbols first, then strings; each group sorted (code-point order) when asked.

        Duplicates are kept. The vector symbol is the name of the summed vectors; KATO also adds
        its nearest stored vectors' names, which katoray does not do yet.
        """
        v_syms = [vector_name(self.vectors)] if self.vectors else []
        s_syms = list(self.strings)
        if sort_symbols:
            v_syms.sort()
            s_syms.sort()
        return v_syms + s_syms


def make_observation(strings: Any = None, vectors: Any = None, emotives: Any = None,
                     metadata: Any = None, unique_id: Any = None) -> Observation:
    """Validate raw observation fields; ``ConfigError`` (a ValueError) names the bad field."""
    return Observation(_strings(strings), _vectors(vectors), _emotives(emotives),
                       _metadata(metadata), _unique_id(unique_id))


def observation_from_dict(data: Mapping[str, Any], position: int | None = None) -> Observation:
    """An observation given as KATO's JSON object (``{"strings": [...], ...}``)."""
    where = "observation" if position is None else f"observation {position}"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a dict with keys {', '.join(_FIELDS)}, got {type(data).__name__}")
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {sorted(unknown)}; allowed: {', '.join(_FIELDS)}")
    try:
        return make_observation(**data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"field 'strings' must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"field 'strings' item {i} must be a string, got {type(item).__name__} {item!r}")
    _check_encodable("strings", value)
    return tuple(value)


def _check_encodable(field_name: str, texts: Sequence[str]) -> None:
    """Every text is valid Unicode (UTF-8 encodable): a lone surrogate such as '\\ud800' would pass
    into STM and fail only at learn, when the pattern's name is hashed and stored."""
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        bad = next(i for i, text in enumerate(texts) if not _is_encodable(text))
        raise ConfigError(f"field {field_name!r} item {bad} ({texts[bad]!r}) is not valid Unicode (a lone "
                          "surrogate cannot be encoded as UTF-8); decode the text correctly before observing it") \
            from None


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _vectors(value: Any) -> tuple[tuple[float, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ConfigError(f"field 'vectors' must be a list of lists of numbers, got {type(value).__name__}")
    out = []
    for i, vector in enumerate(value):
        if not isinstance(vector, Sequence) or isinstance(vector, (str, bytes)):
            raise ConfigError(f"field 'vectors' item {i} must be a list of numbers")
        for x in vector:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ConfigError(f"field 'vectors' item {i} holds {x!r}; vectors must be finite numbers")
        out.append(tuple(float(x) for x in vector))
    if len({len(v) for v in out}) > 1:
        raise ConfigError("field 'vectors' holds vectors of different lengths; they are summed, so sizes must match")
    return tuple(out)


def _emotives(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"field 'emotives' must be a dict of name -> number, got {type(value).__name__}")
    for key, x in value.items():
        if not isinstance(key, str):
            raise ConfigError(f"field 'emotives' key {key!r} must be a string")
        _check_encodable("emotives", [key])
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise ConfigError(f"field 'emotives' value for {key!r} must be a finite number, got {x!r}")
    return dict(value)


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"field 'metadata' must be a dict, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"field 'metadata' key {key!r} must be a string")
    _check_encodable("metadata", [*value, *(v for v in value.values() if isinstance(v, str))])
    return dict(value)


def _unique_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"field 'unique_id' must be a string, got {type(value).__name__}")
    return value
