"""Start and resume durable training runs: ``start_run``, ``resume_run``.

    stats = start_run(TrainConfig(data="books/", tokenizer="gpt2", chunk_sizes=(8, 8, 8, 8)))
    stats = resume_run("20261126-101500-3fa9c2", runs_dir="runs")      # after a crash or Ctrl-C

A run lives in ``<runs_dir>/<run_id>/``: ``manifest.json`` (config, identities, progress, status),
``checkpoint.json`` (the batches durable at every level) and, by default, its knowledge bases
(``kb/<kb_id>.sqlite``, one file per level). The path of every run, from the command line, a Ray
job, the notebook's functions or Python::

    TrainConfig --for_run--> RunSpec.from_config --> katoray.runtime.run_training

Node ids carry the run id (``node{i}_<run_id>``), so runs sharing a store never mix.

Exactly once across crashes: every ``checkpoint_interval`` documents the checkpoint records the
completed batch ids (all durable already). A resume skips them and re-sends the rest; batches
that were applied after the last checkpoint are recognised by the stores' batch-id ledgers and
add nothing. A resume refuses a different structural config (hierarchy, tokenizer, corpus,
batching, store) and a corpus or tokenizer that changed since the run started: it would count
other batches, or the same ones differently.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any, Mapping

from katoray.config import DEFAULT_RUNS_DIR, KB_FILES_DIR, RUN_TIME, STRUCTURAL, TrainConfig, new_run_id
from katoray.errors import ConfigError, KatorayError
from katoray.jobs.checkpoint import Checkpoint, combine_statistics
from katoray.jobs.manifest import (FAILED, FINISHED, MANIFEST_FILE, RUNNING, TrainingManifest, data_identity,
                                   identity_differences, usable_store_url, utc_now, versions)
from katoray.jobs.runs import RunLock, run_path
from katoray.runspec import RunSpec
from katoray.store.naming import owner_record
from katoray.store.urls import absolute_store_url, redact_url, without_userinfo

log = logging.getLogger(__name__)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def start_run(config: TrainConfig) -> dict[str, Any]:
    """Start a new run: create its folder and manifest, train with checkpoints, record the end.

    Returns:
        The run's statistics (documents, tokens, rates, per level patterns / observations /
        reuse; see ``katoray.runtime.run_training``) plus ``run_id``, ``run_dir``, ``store``,
        ``status`` and ``attempts``.

    Raises:
        ConfigError: a bad config, or the run id is taken. CorpusError / DocumentError: bad
        data (named). StoreError: the store cannot be used. RunBusyError: the run is locked.
        Nothing is created when the corpus, tokenizer or store fails its check.
    """
    config = config.for_run(config.run_id or new_run_id())
    if (config.run_dir / MANIFEST_FILE).exists():
        raise ConfigError(f"run {config.run_id!r} already exists in {config.runs_dir}: resume it "
                          f"(katoray resume {config.run_id}) or choose another run id")
    run_uid = uuid.uuid4().hex                           # tells this run from another of the same id
    spec = _spec(config, run_uid)
    data = data_identity(config.data, config.dataset)   # a missing corpus fails before anything exists,
    _check_first_document(config)                        # so does a wrong text field,
    tokenizer = _ray_and_tokenizer(config, spec)         # an unreachable Ray cluster, an unknown tokenizer,
    _check_stores(spec)                                  # an unreachable store
    with RunLock(config.run_dir):
        if (config.run_dir / MANIFEST_FILE).exists():     # another process started it meanwhile
            raise ConfigError(f"run {config.run_id!r} was started by another process; resume it instead")
        manifest = TrainingManifest(config.run_id, config.to_dict(), _node_table(spec), tokenizer.identity(), data,
                                    versions(), run_uid=run_uid)
        _save(manifest, "no batch was trained; the run has no manifest yet", config.run_dir)
        return _train(spec, config, manifest, Checkpoint(config.run_id), "start", tokenizer)


def resume_run(run_id: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, **overrides: Any) -> dict[str, Any]:
    """Continue an interrupted run where its last checkpoint left it.

    Args:
        run_id, runs_dir: the run.
        **overrides: run-time fields (``workers``, ``checkpoint_interval``, ``verbose``,
            ``address``) to change; ``store`` to give a MongoDB URL its password back (the
            manifest keeps none); structural fields only to confirm them (they must not differ).

    Returns:
        The run's statistics over all its attempts (as ``start_run``). For a finished run:
        its final statistics, with ``resumed`` False (nothing to do).

    Raises:
        ConfigError: a structural difference, listed field by field (``chunk_sizes: run had
            [8, 8, 8, 8], now [4, 4, 4, 4]``), including a corpus or tokenizer vocabulary that
            changed since the run started. RunNotFoundError, RunBusyError.
    """
    folder = run_path(run_id, runs_dir)
    TrainingManifest.load(folder)                        # RunNotFoundError before a lock file is made
    with RunLock(folder):
        manifest = TrainingManifest.load(folder)
        if manifest.status == FINISHED:
            log.info("run %s finished at %s: nothing to resume", run_id, manifest.finished)
            return _result(manifest, manifest.statistics, resumed=False)
        config, tokenizer = _resumed_config(manifest, folder, overrides)
        _connect_ray(config.address)
        manifest.run_uid = manifest.run_uid or uuid.uuid4().hex     # a run started by an earlier katoray
        spec = _spec(config, manifest.run_uid, tuple(manifest.level_kb_ids().values()))
        _check_stores(spec)
        checkpoint = Checkpoint.load(folder) or Checkpoint(run_id)
        return {**_train(spec, config, manifest, checkpoint, "resume", tokenizer), "resumed": True}


def _spec(config: TrainConfig, run_uid: str, kb_ids: tuple[tuple[str, ...], ...] = ()) -> RunSpec:
    """The run's spec; its knowledge bases are claimed for this run (id, uid and folder)."""
    return RunSpec.from_config(config, kb_ids, owner_record(config.run_id, run_uid, config.run_dir))


def _resumed_config(manifest: TrainingManifest, folder: Path, overrides: dict[str, Any]):
    """(The run's config with ``overrides``, its tokenizer loaded); ConfigError listing every
    structural difference."""
    unknown = sorted(set(overrides) - set(STRUCTURAL) - set(RUN_TIME) - {"nodes"})
    if unknown:
        raise ConfigError(f"resume cannot set {unknown}: it takes the run-time fields {list(RUN_TIME)}, and "
                          f"structural fields {list(STRUCTURAL)} only unchanged")
    overrides = dict(overrides)
    if "nodes" in overrides:                              # kato-lm's word for levels
        overrides["levels"] = overrides.pop("nodes")
    given_store = overrides.pop("store", None)
    recorded = _recorded_config(manifest, folder)
    if "levels" in overrides:       # the run's chunk size and shards on every requested level
        overrides.setdefault("chunk_sizes", recorded.chunk_sizes[:1])
        overrides.setdefault("shards", recorded.shards[:1])
    config = dataclasses.replace(recorded, **overrides)
    differences = recorded.structural_differences(config)
    if given_store is not None and without_userinfo(redact_url(absolute_store_url(given_store))) != \
            without_userinfo(recorded.store):
        differences.append(f"store: run had {recorded.store!r}, now {redact_url(given_store)!r}")
    same_tokenizer = config.tokenizer == recorded.tokenizer     # same name or folder: same vocabulary still?
    tokenizer = _load_tokenizer(config) if same_tokenizer else None
    identity = tokenizer.identity() if same_tokenizer else manifest.tokenizer
    data = manifest.data
    if (config.data, config.dataset) == (recorded.data, recorded.dataset):   # same corpus: same content?
        data = data_identity(config.data, config.dataset)
    differences += identity_differences(manifest, identity, data)
    if differences:
        raise ConfigError(f"run {manifest.run_id!r} cannot resume with a different structural configuration "
                          f"(start a new run instead): {'; '.join(differences)}")
    store = usable_store_url(recorded.store, given_store and absolute_store_url(given_store))
    return dataclasses.replace(config, store=store), tokenizer


def _recorded_config(manifest: TrainingManifest, folder: Path) -> TrainConfig:
    """The manifest's config, re-based on the runs folder the run is in now (it may have moved)."""
    values = dict(manifest.config)
    old_default = f"sqlite:///{(Path(values['runs_dir']) / manifest.run_id / KB_FILES_DIR).as_posix()}"
    if values["store"] == old_default:
        values["store"] = None           # the default store moves with its run folder
    values["runs_dir"] = str(folder.parent)
    values["address"] = None             # where the run's Ray was is no default for where it resumes
    values.setdefault("first_batch_chars", None)   # a run started before first batches were smaller had none
    return TrainConfig.from_dict(values).for_run(manifest.run_id)


# -- checks before anything is written ------------------------------------------------------------
def _check_first_document(config: TrainConfig) -> None:
    """Read the first document of local data: a wrong ``text_field`` (the usual first mistake
    with a .jsonl or .parquet corpus) fails with its CorpusError before a run exists."""
    if config.data is not None and config.max_samples != 0:
        from katoray.text.corpora import iter_local_documents

        next(iter_local_documents(config.data, config.text_field), None)


def _load_tokenizer(config: TrainConfig):
    """The run's tokenizer, loaded once on the driver (the pool receives it pickled): an unknown
    name fails here, named, not as a pool actor that died in its constructor."""
    from katoray.text.tokenizers import load_tokenizer

    return load_tokenizer(config.tokenizer)


def _ray_and_tokenizer(config: TrainConfig, spec: RunSpec):
    """Ray up (joined or started) and the tokenizer loaded, the one while the other happens."""
    from katoray.runtime.driver import ray_up_while

    return ray_up_while(spec, config.address, lambda: _load_tokenizer(config))


def _check_stores(spec: RunSpec) -> None:
    from katoray.runtime.sinks import check_stores

    check_stores(spec)


def _connect_ray(address: str | None) -> None:
    from katoray.runtime.driver import connect_ray

    connect_ray(address)


def _node_table(spec: RunSpec) -> dict[str, dict[str, Any]]:
    """Per level: node id, its knowledge base (``kb_id``; ``kb_ids``, one per shard, when sharded), chunk size, mode."""
    return {f"node{i}": {"node_id": node_id, **({"kb_id": ids[0]} if len(ids) == 1 else {"kb_ids": list(ids)}),
                         "chunk_size": size, "mode": spec.hierarchy.mode}
            for i, (node_id, ids, size) in enumerate(zip(spec.node_ids, spec.kb_ids, spec.hierarchy.chunk_sizes))}


# -- one attempt --------------------------------------------------------------------------------------
def _train(spec: RunSpec, config: TrainConfig, manifest: TrainingManifest, checkpoint: Checkpoint, kind: str,
           tokenizer: Any) -> dict[str, Any]:
    """One attempt (the start, or a resume): train, checkpoint, and record how it ended."""
    from katoray.runtime.driver import run_training
    from katoray.text.shards import plan_shards

    before = dict(checkpoint.statistics)     # totals of earlier attempts, up to their last checkpoint
    attempt = {"kind": kind, "started": utc_now(), "ended": None, "outcome": RUNNING, "workers": config.workers,
               "skipped_batches": len(checkpoint.completed), "host": socket.gethostname(), "pid": os.getpid()}
    was = manifest.status
    manifest.attempts.append(attempt)
    manifest.config, manifest.status, manifest.error, manifest.finished = config.to_dict(), RUNNING, None, None
    _save(manifest, f"nothing was trained in this attempt; the manifest still says {was!r}")

    def on_checkpoint(completed: frozenset, stats: dict[str, Any]) -> None:
        totals = combine_statistics(before, stats)
        try:
            Checkpoint(config.run_id, completed, totals, utc_now()).save(config.run_dir)
        except OSError as err:
            raise _record_error(manifest, config.run_dir, err, "its last checkpoint stands (a resume re-sends what "
                                "came after it, and the stores recognise what they already hold)") from err
        _record_progress(manifest, totals)
        _save(manifest, "its checkpoint is written, its manifest still shows the one before")

    try:
        shards = plan_shards(config.data, config.dataset, config.text_field, config.max_samples)
        stats = run_training(spec, shards, on_checkpoint=on_checkpoint,
                             skip_batches=checkpoint.completed, tokenizer=tokenizer)
    except BaseException as err:               # Ctrl-C and SIGTERM too: the manifest says how it ended
        attempt.update(ended=utc_now(), outcome=FAILED)
        manifest.status, manifest.error = FAILED, _one_line(err)
        _save(manifest, f"the run stopped ({_one_line(err)}) and its manifest still says 'running'", cause=err)
        raise
    totals = combine_statistics(before, stats)
    attempt.update(ended=utc_now(), outcome=FINISHED)
    manifest.status, manifest.finished = FINISHED, utc_now()
    _record_progress(manifest, totals)
    _save(manifest, "every batch was trained, but the manifest still says 'running'")
    return _result(manifest, totals)


class RunRecordError(KatorayError):
    """A run's manifest or checkpoint could not be written (a full disk, say)."""


def _save(manifest: TrainingManifest, state: str, path: Path | None = None, cause: BaseException | None = None) -> None:
    """``manifest.save(path)``; if the disk refuses, one error saying why and what state the run is in."""
    try:
        manifest.save(path)
    except OSError as err:
        raise _record_error(manifest, path or manifest.run_dir, err, state) from (cause or err)


def _record_error(manifest: TrainingManifest, folder: Path, err: OSError, state: str) -> RunRecordError:
    why = (f"the disk holding {folder} is full" if err.errno == errno.ENOSPC else
           f"{folder} cannot be written ({err.strerror or err})")
    return RunRecordError(f"run {manifest.run_id!r}: {why}, so its records could not be updated: {state}. Free "
                          f"space, then continue with: katoray resume {manifest.run_id} --runs-dir "
                          f"{Path(folder).parent}")


def _record_progress(manifest: TrainingManifest, totals: Mapping[str, Any]) -> None:
    manifest.documents = int(totals.get("samples_processed", 0))
    manifest.tokens = int(totals.get("tokens_processed", 0))
    manifest.statistics = dict(totals)


def _result(manifest: TrainingManifest, statistics: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {**statistics, "run_id": manifest.run_id, "run_dir": str(manifest.run_dir), "store": manifest.store,
            "status": manifest.status, "attempts": len(manifest.attempts), **extra}


def _one_line(err: BaseException) -> str:
    if isinstance(err, (KeyboardInterrupt, SystemExit)):   # Ctrl-C, or SIGTERM (Ray's handler exits)
        return f"stopped by {type(err).__name__}{f' {err}' if str(err) else ''}; resume the run to continue"
    text = _ANSI.sub("", str(err)).strip().splitlines()     # plain text: Ray colours its tracebacks
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
