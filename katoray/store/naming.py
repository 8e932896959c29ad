"""Knowledge-base ids: KATO's rule for a node id, and an injective one for a run's levels.

``kb_id_for(node_id)`` is KATO's: the node id with ``/\\. "$*<>:|?-`` replaced by ``_``, then
``_kato`` (``node0_kato``); it folds several node ids into one name, as KATO does, which is right
for a KATO server's clients and wrong for runs: ``exp-1`` and ``exp_1`` would share knowledge bases.

``run_kb_id(level, run_id)`` names a run's level ``node{level}_<encoded run id>_kato``, where the
encoding keeps ``a-z``, ``0-9``, ``_`` and ``-`` and writes every other character as ``~<hex>~``
(``exp.1`` -> ``exp~2e~1``, ``Exp`` -> ``~45~xp``). It is injective (the encoding reads back:
``decode_run_id``), never produces two names that differ only in case (case-insensitive file
systems, MongoDB's database names), and uses only characters MongoDB database names and file
names allow. A run id whose names would exceed MongoDB's 63-byte limit is refused up front
(``check_run_id_fits``), never truncated.
"""
from __future__ import annotations

import hashlib
import re

from katoray.errors import ConfigError

SERVICE = "kato"
MAX_DB_NAME_BYTES = 63                 # MongoDB: database names are shorter than 64 bytes
MAX_LEVEL_DIGITS = 3                   # levels node0 .. node999
MAX_ENCODED_RUN_ID = MAX_DB_NAME_BYTES - len("node_") - MAX_LEVEL_DIGITS - len("_" + SERVICE)   # 50
_KEPT = re.compile(r"[a-z0-9_-]")
_ESCAPED = re.compile(r"~([0-9a-f]+)~")
_UNSAFE = re.compile(r'[/\\. "$*<>:|?\-]')
_RUN_DB = re.compile(r"^node(\d+)_(.+)_" + SERVICE + "$")


def kb_id_for(node_id: str, service: str = SERVICE) -> str:
    """KATO's knowledge-base id for a node: sanitised node id + ``_`` + service (``node0_kato``)."""
    safe_node = _UNSAFE.sub("_", node_id)
    safe_service = service.replace("-", "_")
    kb_id = f"{safe_node}_{safe_service}"
    if len(kb_id) > 60:  # KATO's truncation rule keeps MongoDB database names legal
        digest = hashlib.md5(safe_node.encode()).hexdigest()[:8]
        kb_id = f"{safe_node[:60 - len(safe_service) - 10]}_{digest}_{safe_service}"
    return kb_id


def encode_run_id(run_id: str) -> str:
    """The run id with every character outside ``a-z 0-9 _ -`` written ``~<hex code point>~``."""
    return "".join(c if _KEPT.fullmatch(c) else f"~{ord(c):x}~" for c in run_id)


def decode_run_id(encoded: str) -> str:
    """The inverse of ``encode_run_id``."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), encoded)


def run_kb_id(level: int, run_id: str) -> str:
    """The knowledge-base id of a run's level: ``node{level}_<encoded run id>_kato``."""
    return f"node{level}_{encode_run_id(run_id)}_{SERVICE}"


def run_of_kb_id(kb_id: str) -> tuple[int, str] | None:
    """(level, run id) of a ``run_kb_id`` name, or None for another name."""
    match = _RUN_DB.match(kb_id)
    return (int(match.group(1)), decode_run_id(match.group(2))) if match else None


def check_run_id_fits(run_id: str) -> None:
    """ConfigError, naming the limit, if the run's knowledge-base names would be too long."""
    encoded = encode_run_id(run_id)
    if len(encoded.encode()) > MAX_ENCODED_RUN_ID:
        raise ConfigError(
            f"run id {run_id!r} is too long: its knowledge bases are named node<level>_<run id>_kato, and MongoDB "
            f"database names hold at most {MAX_DB_NAME_BYTES} bytes, so a run id may take at most "
            f"{MAX_ENCODED_RUN_ID} characters, counting each character other than a-z, 0-9, '_' and '-' as "
            f"{len(encode_run_id('.'))} or more (this one counts {len(encoded)}); choose a shorter id")
