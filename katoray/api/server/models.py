"""Request bodies of KATO's HTTP API, validated by pydantic before any engine call.

Types are KATO's (``kato/api/schemas``), so a wrong type gets KATO's 422 with the field's path
(``{"detail": [{"type", "loc", "msg", "input"}]}``). On top of KATO's checks: text must be valid
Unicode (JSON's ``"\\ud800"`` escape makes a lone surrogate that no store can hold), and a node id
must be a non-empty name without control characters (it names a database or a file).
"""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, Field, field_validator, model_validator

MAX_NODE_ID_CHARS = 1000


def check_text(value: Any, where: str) -> None:
    """Raise ValueError if any string inside ``value`` (keys included) is not valid Unicode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"{where} holds a lone surrogate {value[err.start]!r}, which is not valid Unicode; "
                             "send text as UTF-8") from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(key, where)
            check_text(item, f"{where}.{key}" if isinstance(key, str) else where)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_text(item, f"{where}[{i}]")


class KatoModel(BaseModel):
    """A request body: every string in it valid Unicode."""

    @model_validator(mode="after")
    def _valid_text(self):
        for name, value in self.__dict__.items():
            check_text(value, name)
        return self


class ObservationData(KatoModel):
    """One observation (KATO's ``ObservationData``)."""

    strings: list[str] = Field(default_factory=list, description="string symbols of one event")
    vectors: list[list[float]] = Field(default_factory=list, description="vector embeddings")
    emotives: dict[str, float] = Field(default_factory=dict, description="emotive values")
    metadata: dict[str, Any] = Field(default_factory=dict, description="pattern metadata (kept as unique strings)")
    unique_id: str | None = Field(None, description="the observation's id (a new one when absent)")


class ObservationSequenceRequest(KatoModel):
    """KATO's ``observe-sequence`` body."""

    observations: list[ObservationData] = Field(..., description="observations, in order")
    learn_after_each: bool = False
    learn_at_end: bool = False
    clear_stm_between: bool = False


class CreateSessionRequest(KatoModel):
    """KATO's ``POST /sessions`` body."""

    node_id: str = Field(..., description="the node (knowledge base) the session works on")
    metadata: dict[str, Any] | None = Field(default_factory=dict)
    ttl_seconds: int | None = Field(None, ge=0, description="seconds of inactivity before the session "
                                                            "expires (default 3600)")
    config: dict[str, Any] | None = Field(None, description="session configuration (KATO's keys)")

    @field_validator("node_id")
    @classmethod
    def _node_name(cls, value: str) -> str:
        return check_node_id(value)


def check_node_id(value: str) -> str:
    """A node id a store can name a database or file after."""
    if not value:
        raise ValueError("node_id must not be empty")
    if len(value) > MAX_NODE_ID_CHARS:
        raise ValueError(f"node_id is {len(value)} characters long; at most {MAX_NODE_ID_CHARS}")
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"node_id holds the control character {bad!r}; use printable characters")
    return value


def observation_dict(data: ObservationData) -> dict[str, Any]:
    """The observation as the engine takes it."""
    return {"strings": data.strings, "vectors": data.vectors, "emotives": data.emotives,
            "metadata": data.metadata, "unique_id": data.unique_id}


class PatternCounts(KatoModel):
    """``count`` learns of one pattern (``name``: the bare sha1 of ``events``), as
    ``katoray.store.base.PatternDelta``."""

    name: str = Field(..., pattern=r"^[0-9a-f]{40}$")
    events: list[list[str]]
    count: int = Field(1, ge=0)
    emotives: list[dict[str, float]] = Field(default_factory=list)
    metadata: dict[str, list[str]] = Field(default_factory=dict)


class ApplyRequest(KatoModel):
    """katoray's bulk write: a batch of merged learns applied in one idempotent step."""

    patterns: list[PatternCounts]
    batch_id: str | None = Field(None, min_length=1, description="a batch id applied before changes nothing")
    persistence: int = Field(5, ge=1, description="emotive dicts kept per pattern")
    metadata_cap: int | None = Field(None, ge=0, description="values kept per metadata key (None: all)")
