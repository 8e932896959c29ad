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

A sharded level (``shards`` > 1) is several knowledge bases, one per shard:
``shard_kb_id(level, run_id, shard, shards)`` is ``node{level}s{shard}_<encoded run id>_kato``
(``node0s2_exp-1_kato``); a level of one shard keeps ``run_kb_id``'s name. The digits after ``s``
end at ``_`` and a run's own names never hold ``s`` there, so these names are injective too.

A run's knowledge bases record it as their owner (``owner_record``: run id, a random id of the run,
its folder; ``KnowledgeBase.claim_owner``), so another run is refused them (``describe_owner``).
"""
from __future__ import annotations

import hashlib
import json
import re

from katoray.errors import ConfigError

SERVICE = "kato"
MAX_DB_NAME_BYTES = 63                 # MongoDB: database names are shorter than 64 bytes
MAX_LEVEL_DIGITS = 3                   # levels node0 .. node999
MAX_ENCODED_RUN_ID = MAX_DB_NAME_BYTES - len("node_") - MAX_LEVEL_DIGITS - len("_" + SERVICE)   # 50
MAX_SHARDS = 1000                      # shards per level: s0 .. s999
_KEPT = re.compile(r"[a-z0-9_-]")
_ESCAPED = re.compile(r"~([0-9a-f]+)~")
_UNSAFE = re.compile(r'[/\\. "$*<>:|?\-]')
_RUN_DB = re.compile(r"^node(\d+)(?:s\d+)?_(.+)_" + SERVICE + "$")


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


def shard_kb_id(level: int, run_id: str, shard: int, shards: int) -> str:
    """The knowledge-base id of shard ``shard`` (0-based) of a level split in ``shards``:
    ``run_kb_id(level, run_id)`` for a single shard, else ``node{level}s{shard}_<encoded run id>_kato``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of a level of {shards} shards: shards are numbered 0..{shards - 1}")
    if shards == 1:
        return run_kb_id(level, run_id)
    return f"node{level}s{shard}_{encode_run_id(run_id)}_{SERVICE}"


def run_of_kb_id(kb_id: str) -> tuple[int, str] | None:
    """(level, run id) of a ``run_kb_id`` or ``shard_kb_id`` name, or None for another name."""
    match = _RUN_DB.match(kb_id)
    return (int(match.group(1)), decode_run_id(match.group(2))) if match else None


def check_run_id_fits(run_id: str, shards: int = 1) -> None:
    """ConfigError, naming the limit, if the run's knowledge-base names would be too long
    (``shards``: the most shards of any of its levels; their names are longer)."""
    encoded = encode_run_id(run_id)
    suffix = 0 if shards <= 1 else len(f"s{shards - 1}")
    limit = MAX_ENCODED_RUN_ID - suffix
    if len(encoded.encode()) > limit:
        names = "node<level>_<run id>_kato" if not suffix else f"node<level>s<shard>_<run id>_kato ({shards} shards)"
        raise ConfigError(
            f"run id {run_id!r} is too long: its knowledge bases are named {names}, and MongoDB "
            f"database names hold at most {MAX_DB_NAME_BYTES} bytes, so a run id may take at most "
            f"{limit} characters, counting each character other than a-z, 0-9, '_' and '-' as "
            f"{len(encode_run_id('.'))} or more (this one counts {len(encoded)}); choose a shorter id")


# -- owners ---------------------------------------------------------------------------------------------
def owner_record(run_id: str, run_uid: str, run_dir: str) -> str:
    """What a run writes as the owner of its knowledge bases (``KnowledgeBase.claim_owner``): its
    id, its random id (another run of the same id is another owner) and its folder, as JSON."""
    return json.dumps({"run_id": run_id, "run_uid": run_uid, "run_dir": str(run_dir)}, sort_keys=True)


def describe_owner(owner: str) -> str:
    """An owner record in words: ``run 'x' in /runs/x`` (records are JSON from ``jobs``, or a run id)."""
    try:
        record = json.loads(owner)
    except ValueError:
        return f"run {owner!r}"
    if not isinstance(record, dict):
        return f"run {owner!r}"
    where = f" in {record['run_dir']}" if record.get("run_dir") else ""
    return f"run {record.get('run_id')!r}{where}"

