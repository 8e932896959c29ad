"""Prediction transfer between nodes (the notebook's ``transfer_*`` modeling functions).

A modeling function takes a node's predictions and a field and returns the strings to send to
another node; ``transfer_predictions`` observes them there, one symbol per event (it never
learns). Works with ``KatoSession``, ``RemoteKatoSession`` and node actors' sessions alike.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from katoray.engine.naming import strip_prefix

FIELDS = ("name", "past", "present", "future", "missing", "matches", "extras")

Predictions = Sequence[Mapping[str, Any]]
ModelingFunction = Callable[..., list[str]]


def _values(prediction: Mapping[str, Any], field: str) -> list[str]:
    """The strings of one prediction's field: a name, a flat list, or events flattened in order."""
    value = prediction.get(field)
    if value is None:
        return []
    if isinstance(value, str):
        return [value if field != "name" else "PTRN|" + value.removeprefix("PTRN|")]
    out: list[str] = []
    for item in value:
        out.extend(item if isinstance(item, list) else [item])
    return out


def _check_field(field: str) -> None:
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}")


def transfer_all_names(predictions: Predictions, field: str = "name") -> list[str]:
    """Every prediction's field."""
    _check_field(field)
    return [v for p in predictions for v in _values(p, field)]


def transfer_threshold(predictions: Predictions, field: str = "name", metric: str = "potential",
                       threshold: float = 0.3) -> list[str]:
    """Predictions whose ``metric`` is >= ``threshold``; if none pass, the best one (first)."""
    _check_field(field)
    kept = [p for p in predictions if p.get(metric, 0) >= threshold] or list(predictions[:1])
    return transfer_all_names(kept, field)


def transfer_top_n(predictions: Predictions, field: str = "name", n: int = 3, sort_by: str = "potential") -> list[str]:
    """The ``n`` predictions with the highest ``sort_by`` (stable: ties keep their order)."""
    _check_field(field)
    ranked = sorted(predictions, key=lambda p: p.get(sort_by, 0), reverse=True)
    return transfer_all_names(ranked[:n], field)


def transfer_weighted(predictions: Predictions, field: str = "name", weight_by: str = "confidence",
                      min_weight: float = 0.3, max_repeats: int = 5) -> list[str]:
    """Each prediction with weight >= ``min_weight`` repeated ``clamp(int(w * max_repeats), 1, max_repeats)``
    times; if none pass, the first prediction once."""
    _check_field(field)
    out: list[str] = []
    for p in predictions:
        weight = p.get(weight_by, 0)
        if weight >= min_weight:
            out.extend(_values(p, field) * max(1, min(max_repeats, int(weight * max_repeats))))
    return out or transfer_all_names(predictions[:1], field)


def transfer_predictions(node_source: Any, node_target: Any, field: str = "name",
                         modeling_function: ModelingFunction | None = None, num_predictions: int = 5) -> dict[str, Any]:
    """Observe (one symbol per event) the chosen field of ``node_source``'s predictions in ``node_target``."""
    _check_field(field)
    predictions = node_source.get_predictions()
    if isinstance(predictions, Mapping):  # a KATO payload {"predictions": [...], ...}
        predictions = predictions.get("predictions", [])
    predictions = list(predictions)[:num_predictions]
    items = modeling_function(predictions, field) if modeling_function else transfer_all_names(predictions, field)
    if field == "name":     # a custom function may return the bare hashes KATO's predictions carry
        items = ["PTRN|" + strip_prefix(item) if isinstance(item, str) else item for item in items]
    for item in items:
        node_target.observe(strings=[item])
    return {"predictions_retrieved": len(predictions), "items_transferred": len(items), "field": field,
            "modeling_applied": modeling_function is not None}
