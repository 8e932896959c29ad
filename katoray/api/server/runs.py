"""Serving a trained run: its levels as KATO nodes ``node0``..``nodeN``.

A run's manifest names each level's node and knowledge base (``node0`` ->
``node0_<run_id>_kato``) and the store they live in; ``katoray serve --run RUN_ID`` maps the
node names to those knowledge bases, so any KATO client (sessions, ``GET /pattern/{id}``
with ``node_id=node0``) reads the trained hierarchy.
"""
from __future__ import annotations

import os

from katoray.config import DEFAULT_RUNS_DIR
from katoray.jobs.runs import load_manifest


def run_nodes(run_id: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR,
              mongo_uri: str | None = None) -> dict[str, tuple[str, tuple[str, ...]]]:
    """{node name: (store URL, kb ids)} of a run's levels (one kb id, or one per shard), checked to exist.

    Raises:
        RunNotFoundError: no such run, or its knowledge-base files are gone.
        ConfigError: a MongoDB run whose password the manifest does not keep, without ``mongo_uri``.
    """
    manifest = load_manifest(run_id, runs_dir)
    url = manifest.store_url(mongo_uri)
    for kb in manifest.open_stores(mongo_uri).values():   # checks that the files exist (opening creates them)
        kb.close()
    return {name: (url, kb_ids) for name, kb_ids in manifest.level_kb_ids().items()}
