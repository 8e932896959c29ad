"""Checks of configuration values, each raising ``ConfigError`` that names the value and the rule.

A leaf module (it imports only the errors), so every layer checks its settings the same way.
"""
from __future__ import annotations

from typing import Any

from katoray.errors import ConfigError


def check_int(name: str, value: Any, minimum: int, *, allow_none: bool = False, unit: str = "") -> None:
    """``value`` is an int (not a bool) >= ``minimum`` (or None when allowed); ConfigError names it."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = f" ({unit})" if unit else ""
        raise ConfigError(f"{name} must be an integer >= {minimum}{what}{' or None' if allow_none else ''}, "
                          f"got {value!r}")


def check_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")
