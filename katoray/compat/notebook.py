"""The notebook's training functions: kato-lm's names and arguments over katoray's durable runs.

    learner = HierarchicalConceptLearner(nodes=nodes, tokenizer_name="gpt2")
    stats = train_from_streaming_dataset_parallel(dataset_key="wikitext", max_samples=100,
                                                  learner=learner, num_levels=4, num_workers=4)

Each call is a thin adapter: it builds a ``TrainConfig`` from the learner (its nodes, tokenizer,
store, run id and metadata cap) and the arguments, and starts the run as ``katoray train`` does
(``katoray.jobs.start_run``): a manifest and checkpoints in ``<checkpoint_dir>/<run_id>/``
(default ``runs``), so ``load_latest_manifest()`` and ``list_all_training_runs()`` find it.
``resume_from_checkpoint=True`` continues the learner's run where its last checkpoint left it.
A ``memory://`` learner's run trains into the run folder's SQLite files (a run's knowledge bases
outlive the process), and the learner's sessions are reopened on them afterwards.

Without kato-lm's traps: no ``profiler`` argument to pass (its bug B2), one tokenizer for
segmentation and the manifest (B17), real pattern counts (D6), errors that name the document
(B15), and knowledge bases that do not depend on the worker count.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from katoray.compat.nodes import HierarchicalNode, used_nodes
from katoray.config import (DEFAULT_BATCH_CHARS, DEFAULT_BATCH_SIZE, DEFAULT_CHECKPOINT_INTERVAL,
                            DEFAULT_FIRST_BATCH_CHARS, DEFAULT_METADATA_CAP, DEFAULT_RUNS_DIR, TrainConfig)
from katoray.errors import ConfigError
from katoray.store.urls import is_memory


def train_from_streaming_dataset_parallel(
        dataset_key: str | None = None, max_samples: int | None = None, learner: Any = None, num_levels: int = 4,
        num_workers: int = 4, segment_method: str = "simple", verbose: bool = True, *, data: str | None = None,
        text_field: str = "text", batch_size: int = DEFAULT_BATCH_SIZE, batch_chars: int | None = DEFAULT_BATCH_CHARS,
        store: str | None = None, run_id: str | None = None, nodes: Sequence[HierarchicalNode] | None = None,
        tokenizer: str | None = None, tokenizer_name: str | None = None, metadata_cap: int | None = None,
        checkpoint_dir: str | None = None, checkpoint_interval: int | None = None,
        resume_from_checkpoint: bool = False, profiler: Any = None,
        first_batch_chars: int | None = DEFAULT_FIRST_BATCH_CHARS, shards: int | Sequence[int] = 1) -> dict[str, Any]:
    """Train a hierarchy on a corpus with ``num_workers`` parallel workers on Ray, as a durable run.

    Args:
        dataset_key: a registered Hugging Face dataset key (``wikitext``, ``c4``, ...), ``"pydoc"``
            (Python's own docs, no download), or a local corpus file or folder. Or pass ``data=``.
        max_samples: the first N documents of the corpus (None = all).
        learner: a ``HierarchicalConceptLearner``: nodes, tokenizer, store, run id and metadata
            cap come from it; its sessions see the trained knowledge bases afterwards.
        num_levels: levels to train (the learner's first ``num_levels`` nodes).
        num_workers: mapper actors (each tokenizes and maps batches of documents).
        segment_method: ``simple``, ``article`` or ``book``.
        verbose: one live progress line on stderr.
        data: a local file or folder (.txt, .jsonl, .parquet, optionally .gz).
        text_field: the text column of jsonl/parquet rows.
        batch_size, batch_chars: a batch (one knowledge-base write per level) holds up to
            ``batch_size`` documents and closes early at ``batch_chars`` characters.
        first_batch_chars: the run's first batches close at this many characters, doubling up to
            ``batch_chars`` (the pipeline starts sooner); None = whole batches from the start.
        shards: knowledge bases per level, each owned by its own node actor (one count for every
            level, or one per level); the trained knowledge is the same whatever the count.
        store, run_id, nodes, tokenizer, metadata_cap: without a learner (or to override it).
        tokenizer_name: kato-lm's separate argument; it must agree with the learner's.
        checkpoint_dir: the runs folder (default ``runs``): the run's manifest and checkpoints go
            to ``<checkpoint_dir>/<run_id>/``.
        checkpoint_interval: documents between checkpoints (default 100).
        resume_from_checkpoint: continue the run ``run_id`` (or the learner's) in ``checkpoint_dir``.
        profiler: accepted and ignored (kato-lm required one; nothing needs it here).

    Returns:
        The run's statistics: ``samples_processed``, ``tokens_processed``, ``total_time_seconds``,
        ``rate_samples_per_sec``, ``rate_tokens_per_sec``, ``num_workers``, ``run_id``, ``run_dir``,
        ``store``, and per level ``node{i}_patterns``, ``node{i}_observations``,
        ``node{i}_unlearned``, ``node{i}_reuse_rate``.

    Raises:
        ConfigError: bad arguments (named as this function names them); DocumentError /
        CorpusError: a bad document (named).
    """
    from katoray.jobs.run import resume_run, start_run

    del profiler
    runs_dir = checkpoint_dir or DEFAULT_RUNS_DIR
    if resume_from_checkpoint:
        run_id = run_id or getattr(learner, "run_id", None)
        if not run_id:
            raise ConfigError("resume_from_checkpoint needs the run's id: pass run_id=..., or the learner of the run")
        stats = resume_run(run_id, runs_dir, workers=num_workers, verbose=verbose)
    else:
        config = notebook_config(learner, nodes, num_levels, num_workers, segment_method, verbose, dataset_key, data,
                                 max_samples, text_field, batch_size, batch_chars, store, run_id, tokenizer,
                                 tokenizer_name, metadata_cap, runs_dir, checkpoint_interval,
                                 first_batch_chars=first_batch_chars, shards=shards)
        stats = start_run(config)
    if learner is not None and is_memory(learner.store) and stats.get("run_id") == learner.run_id:
        learner.open(_run_store(stats))          # the learner's sessions now read the run's knowledge bases
    return stats


def train_from_streaming_dataset(dataset_key: str | None = None, max_samples: int | None = None, learner: Any = None,
                                 num_levels: int = 4, segment_method: str = "simple", verbose: bool = True,
                                 **kwargs: Any) -> dict[str, Any]:
    """The same with one worker (the notebook's sequential name)."""
    if "num_workers" in kwargs:
        raise ConfigError("train_from_streaming_dataset uses one worker; call "
                          "train_from_streaming_dataset_parallel(num_workers=...) for more")
    return train_from_streaming_dataset_parallel(dataset_key, max_samples, learner, num_levels, 1, segment_method,
                                                 verbose, **kwargs)


def notebook_config(learner: Any, nodes, num_levels: int, num_workers: int, segment_method: str, verbose: bool,
                    dataset_key, data, max_samples, text_field, batch_size, batch_chars, store, run_id, tokenizer,
                    tokenizer_name, metadata_cap, runs_dir, checkpoint_interval, *,
                    first_batch_chars: int | None = DEFAULT_FIRST_BATCH_CHARS,
                    shards: int | Sequence[int] = 1) -> TrainConfig:
    """The ``TrainConfig`` of a notebook call: the learner's hierarchy, tokenizer, store and run."""
    if learner is not None and nodes is not None:
        raise ConfigError("pass either learner= or nodes=, not both (the learner already has its nodes)")
    used = used_nodes(learner.node_configs if learner is not None else
                      nodes or [HierarchicalNode(f"node{i}") for i in range(num_levels)], num_levels)
    if dataset_key is not None and data is not None:
        raise ConfigError("give one corpus: dataset_key=<key or local path> or data=<file or folder>, not both")
    store = _server_store(used) or store or getattr(learner, "store", None)   # base_url: the server's KBs
    return TrainConfig(
        levels=len(used), chunk_sizes=tuple(n.chunk_size for n in used), mode=used[0].mode,
        metadata_levels=tuple(n.level for n in used if n.records_metadata),
        session_configs=tuple(n.session_config for n in used), segment_method=segment_method,
        tokenizer=_one_tokenizer(learner, tokenizer, tokenizer_name), data=data, dataset=dataset_key,
        text_field=text_field, max_samples=max_samples, batch_size=batch_size, batch_chars=batch_chars,
        first_batch_chars=first_batch_chars, shards=shards,
        metadata_cap=metadata_cap or getattr(learner, "metadata_cap", None) or DEFAULT_METADATA_CAP,
        store=None if store is None or is_memory(store) else store,
        run_id=run_id or getattr(learner, "run_id", None), runs_dir=runs_dir, workers=num_workers,
        checkpoint_interval=checkpoint_interval or DEFAULT_CHECKPOINT_INTERVAL, verbose=verbose)


def _server_store(nodes: Sequence[HierarchicalNode]) -> str | None:
    """``kato+http://...`` when the trained nodes have a base_url (one server for all), else None."""
    from katoray.store.kato_http import store_url_for

    urls = {n.base_url for n in nodes}
    if urls == {None}:
        return None
    if len(urls) > 1:
        raise ConfigError(f"nodes {[n.name for n in nodes]} have base_urls {sorted(map(str, urls))}: the parallel "
                          "trainer writes every level to one place; give all of them the same KATO server, or none")
    return store_url_for(urls.pop())


def _one_tokenizer(learner: Any, tokenizer: str | None, tokenizer_name: str | None) -> str | None:
    """One tokenizer for the run (kato-lm could segment with one and record another)."""
    named = (tokenizer, tokenizer_name, getattr(learner, "tokenizer_name", None))
    given = {_resolved(name) for name in named if name is not None}
    if len(given) > 1:
        raise ConfigError(f"conflicting tokenizers {sorted(given)}: the learner, tokenizer= and tokenizer_name= "
                          "must name the same one")
    return next(iter(given), None)


def _resolved(name: str) -> str:
    """A local tokenizer folder as an absolute path (workers may run in another directory)."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _run_store(stats: dict[str, Any]) -> str:
    from katoray.jobs.runs import load_manifest

    return load_manifest(stats["run_id"], Path(stats["run_dir"]).parent).store_url()
