"""A run as Parquet files: ``export_run`` writes one file per level, ``import_run`` loads them into
any backend as a new run with the same fingerprint (also how a run moves from SQLite to MongoDB).

An export folder holds ``<node>.parquet`` per level (columns ``name`` (bare sha1), ``pattern_data``
(list of events, each a list of str), ``length``, ``frequency``, ``emotives`` (list of maps str ->
float64) and ``metadata`` (map str -> list of str), sorted by name) and ``export.json``: the source
run's manifest, where it came from, and per level its file, pattern count, total frequency and
fingerprint (``katoray.jobs.runs.fingerprint_kb``). pandas, polars and DuckDB read the files as
they are (``pd.read_parquet("node0.parquet")``, ``duckdb.sql("FROM 'node0.parquet'")``).

Both directions stream: the export writes a row group per ``ROW_GROUP`` patterns as the store
yields them; the import applies one batch per ``IMPORT_BATCH`` rows, each with its own batch id, so
an import cut short and run again finishes exactly (no pattern counted twice), and checks every
level's fingerprint against the export's at the end. Symbol statistics and totals are rebuilt by
the store from the patterns (``count`` learns of a pattern add what ``count`` single learns add).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from katoray.errors import ConfigError, KatorayError
from katoray.jobs.checkpoint import read_json, write_json_atomic
from katoray.jobs.manifest import FINISHED, MANIFEST_FILE, TrainingManifest, utc_now
from katoray.store.base import PatternDelta, PatternRecord
from katoray.store.urls import absolute_store_url

EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
ROW_GROUP = 10_000          # patterns per Parquet row group, held in memory at once while exporting
IMPORT_BATCH = 5_000        # rows per import apply: a MongoDB bulk write of this size stays quick


def _schema():
    import pyarrow as pa   # lazy: only exports and imports need it

    return pa.schema([("name", pa.string()), ("pattern_data", pa.list_(pa.list_(pa.string()))),
                      ("length", pa.int64()), ("frequency", pa.int64()),
                      ("emotives", pa.list_(pa.map_(pa.string(), pa.float64()))),
                      ("metadata", pa.map_(pa.string(), pa.list_(pa.string())))])


# -- export ----------------------------------------------------------------------------------------
def export_run(run_id: str, out_dir: str | os.PathLike, runs_dir: str | os.PathLike = "runs",
               mongo_uri: str | None = None) -> dict[str, Any]:
    """Write run ``run_id``'s levels to ``out_dir`` (created; files of an earlier export there are
    replaced). Returns what ``export.json`` holds."""
    from katoray.jobs.runs import load_manifest

    manifest = load_manifest(run_id, runs_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stores = manifest.open_stores(mongo_uri)
    try:
        levels = [{"node": node, "kb_id": kb.kb_id, "file": f"{node}.parquet", **_write_level(kb, out / f"{node}.parquet")}
                  for node, kb in stores.items()]
    finally:
        for kb in stores.values():
            kb.close()
    export = {"format": EXPORT_FORMAT, "exported": utc_now(), "run_id": manifest.run_id,
              "run_dir": str(manifest.run_dir), "store": manifest.store, "levels": levels,
              "manifest": manifest.to_dict()}
    write_json_atomic(out / EXPORT_FILE, export, indent=1)
    return export


def _write_level(kb, path: Path) -> dict[str, Any]:
    """Stream ``kb`` into ``path``; returns its fingerprint (pattern count, total frequency, sha256)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from katoray.jobs.runs import Fingerprint

    schema = _schema()
    fingerprint = Fingerprint()
    partial = path.with_name(path.name + ".partial")
    with pq.ParquetWriter(partial, schema) as writer:
        for rows in _pages(kb.iter_patterns()):
            for record in rows:
                fingerprint.add(record)
            writer.write_table(pa.Table.from_pylist([_row(r) for r in rows], schema), row_group_size=ROW_GROUP)
    partial.replace(path)   # a file under its final name is always whole
    return fingerprint.result()


def _pages(records: Iterator[PatternRecord]) -> Iterator[list[PatternRecord]]:
    page: list[PatternRecord] = []
    for record in records:
        page.append(record)
        if len(page) == ROW_GROUP:
            yield page
            page = []
    if page:
        yield page


def _row(r: PatternRecord) -> dict[str, Any]:
    return {"name": r.name, "pattern_data": r.pattern_data, "length": r.length, "frequency": r.frequency,
            "emotives": [list(e.items()) for e in r.emotives], "metadata": list(r.metadata.items())}


# -- import ----------------------------------------------------------------------------------------
def import_run(src_dir: str | os.PathLike, run_id: str, store: str | None = None,
               runs_dir: str | os.PathLike = "runs") -> TrainingManifest:
    """Load an export folder into ``store`` (default: SQLite in the new run's folder) as run
    ``run_id``, with a manifest that records where it came from. Returns the new manifest.

    Raises:
        ConfigError: not an export folder, the run id is taken, or the target store already holds
            other patterns under this run's knowledge-base names.
        KatorayError: a level's fingerprint after loading differs from the export's.
    """
    from katoray.jobs.runs import check_run_id, fingerprint_kb, run_path
    from katoray.store import open_store, redact_url, run_kb_id
    from katoray.store.naming import describe_owner, owner_record

    src = Path(src_dir)
    export = _read_export(src)
    check_run_id(run_id)
    folder = run_path(run_id, runs_dir)
    if (folder / MANIFEST_FILE).exists():
        raise ConfigError(f"run {run_id!r} already exists in {str(folder.parent)!r}: choose another --run-id")
    url = absolute_store_url(store) if store else f"sqlite:///{folder / 'kb'}"
    run_uid = _import_uid(export, run_id, folder)       # the same import run again is the same run
    owner = owner_record(run_id, run_uid, folder)
    nodes: dict[str, dict[str, Any]] = {}
    for i, level in enumerate(export["levels"]):
        node_id, kb_id = f"node{i}_{run_id}", run_kb_id(i, run_id)
        kb = open_store(url, kb_id)
        try:
            if (found_owner := kb.claim_owner(owner)) != owner:      # before anything is written
                raise ConfigError(f"knowledge base {kb_id!r} at {redact_url(url)} belongs to another run "
                                  f"({describe_owner(found_owner)}); choose another --run-id or --store")
            _load_level(kb, src / level["file"], f"import-{export['run_id']}")
            found = fingerprint_kb(kb)
        finally:
            kb.close()
        expected = {key: level[key] for key in ("patterns", "total_frequency", "sha256")}
        if found != expected:
            raise KatorayError(f"{level['node']} of {str(src)!r} loaded into {kb_id} does not match the "
                               f"export (export: {expected}, loaded: {found}); the file or the store is damaged")
        source_node = {key: value for key, value in export["manifest"]["nodes"].get(level["node"], {}).items()
                       if key != "kb_ids"}         # a sharded source's shards: here, one knowledge base per level
        nodes[level["node"]] = {**source_node, "node_id": node_id, "kb_id": kb_id}
    return _save_manifest(export, src, run_id, redact_url(url), Path(runs_dir), nodes, folder, run_uid)


def _import_uid(export: dict[str, Any], run_id: str, folder: Path) -> str:
    """The imported run's random id, derived from what it imports and where: an import cut short
    and started again claims its own knowledge bases; another import into the same names does not."""
    identity = json.dumps([export["run_id"], [level["sha256"] for level in export["levels"]], run_id, str(folder)])
    return hashlib.sha1(identity.encode()).hexdigest()[:32]


def _read_export(src: Path) -> dict[str, Any]:
    if not (src / EXPORT_FILE).exists():
        raise ConfigError(f"{str(src)!r} is not a katoray export: it has no {EXPORT_FILE} (make one with "
                          "katoray export RUN_ID --out DIR)")
    export = read_json(src / EXPORT_FILE)
    if export.get("format") != EXPORT_FORMAT:
        raise ConfigError(f"{str(src / EXPORT_FILE)!r} has export format {export.get('format')!r}; this katoray "
                          f"reads format {EXPORT_FORMAT}")
    missing = [level["file"] for level in export["levels"] if not (src / level["file"]).exists()]
    if missing:
        raise ConfigError(f"{str(src)!r} lacks the level files {missing} that {EXPORT_FILE} lists")
    return export


def _load_level(kb, path: Path, batch_prefix: str) -> None:
    """Apply ``path``'s rows to ``kb``, one idempotent batch per ``IMPORT_BATCH`` rows."""
    import pyarrow.parquet as pq

    first = f"{batch_prefix}-00000"
    if kb.count() and not kb.is_applied(first):
        raise ConfigError(f"knowledge base {kb.kb_id} already holds {kb.count():,} patterns that are not from this "
                          "import; choose another --run-id or --store")
    for i, batch in enumerate(pq.ParquetFile(path).iter_batches(batch_size=IMPORT_BATCH)):
        deltas = [PatternDelta(row["name"], row["pattern_data"], row["frequency"],
                               [dict(e) for e in row["emotives"]], dict(row["metadata"]))
                  for row in batch.to_pylist()]
        persistence = max([len(d.emotives) for d in deltas] + [1])   # keep every stored emotive dict
        kb.apply(deltas, f"{batch_prefix}-{i:05d}", persistence=persistence)


def _save_manifest(export: dict[str, Any], src: Path, run_id: str, store: str, runs_dir: Path,
                   nodes: dict[str, dict[str, Any]], folder: Path, run_uid: str) -> TrainingManifest:
    """The new run's manifest: the source's, under the new id and store, with an ``import`` attempt
    that says from where."""
    # Everything that names the source run itself is replaced, its random id included.
    manifest = TrainingManifest.from_dict({**export["manifest"], "run_id": run_id, "nodes": nodes,
                                           "status": FINISHED, "error": None, "run_uid": run_uid})
    # An import loads each level into one knowledge base, whatever shards the source had.
    manifest.config = {**manifest.config, "run_id": run_id, "store": store, "runs_dir": str(runs_dir.resolve()),
                       "shards": 1}
    now = utc_now()
    manifest.attempts = [*manifest.attempts, {
        "kind": "import", "started": now, "ended": now, "outcome": FINISHED, "from": str(src.resolve()),
        "source_run_id": export["run_id"], "source_store": export["store"], "exported": export["exported"]}]
    manifest.finished = now
    manifest.save(folder)
    return manifest
