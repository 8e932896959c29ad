"""The notebook's training entry points, on Ray.

    learner = HierarchicalConceptLearner(nodes=nodes, tokenizer_name="gpt2", store="sqlite:///runs/kb")
    stats = train_from_streaming_dataset_parallel(dataset_key="wikitext", max_samples=100,
                                                  learner=learner, num_levels=4, num_workers=4)
    stats = train_from_streaming_dataset_parallel(data="books/", learner=learner)   # local files

Same names and arguments as kato-lm, without its traps: no ``profiler`` argument to pass (its
bug B2), one tokenizer for segmentation and the manifest (B17), real pattern counts (D6), errors
that name the document (B15), and knowledge bases that do not depend on the worker count.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from katoray.errors import ConfigError
from katoray.hierarchy.config import DEFAULT_METADATA_CAP, HierarchicalNode, HierarchyConfig
from katoray.runtime.driver import CheckpointHook, RunSpec, run_training
from katoray.runtime.source import DEFAULT_BATCH_CHARS, DEFAULT_BATCH_SIZE, Batching, plan_shards

DEFAULT_RUNS_DIR = "runs"   # without a store or learner: sqlite:///<cwd>/runs/<run_id>/kb


def train_from_streaming_dataset_parallel(
        dataset_key: str | None = None, max_samples: int | None = None, learner: Any = None, num_levels: int = 4,
        num_workers: int = 4, segment_method: str = "simple", verbose: bool = True, *, data: Any = None,
        text_field: str = "text", batch_size: int = DEFAULT_BATCH_SIZE, batch_chars: int | None = DEFAULT_BATCH_CHARS,
        store: str | None = None, run_id: str | None = None, nodes: Sequence[HierarchicalNode] | None = None,
        tokenizer: str | None = None, tokenizer_name: str | None = None, metadata_cap: int | None = None,
        checkpoint_interval: int | None = None, on_checkpoint: CheckpointHook | None = None,
        skip_batches: Iterable[str] = (), detached: bool = False, keep_nodes: bool = False,
        resume_from_checkpoint: bool = False, profiler: Any = None) -> dict[str, Any]:
    """Train a hierarchy on a corpus with ``num_workers`` parallel workers on Ray.

    Args:
        dataset_key: a registered Hugging Face dataset key (``wikitext``, ``c4``, ...) or
            ``"pydoc"`` (Python's own docs, no download). Or pass ``data=`` instead.
        max_samples: the first N documents of the corpus (None = all).
        learner: a ``HierarchicalConceptLearner``: nodes, tokenizer, store, run id and metadata
            cap come from it (its sessions see the trained knowledge bases afterwards).
        num_levels: levels to train (the learner's first ``num_levels`` nodes).
        num_workers: mapper actors (each tokenizes and maps batches of documents).
        segment_method: ``simple``, ``article`` or ``book``.
        verbose: one live progress line on stderr.
        data: a local file or folder (.txt, .jsonl, .parquet, optionally .gz), or a list of
            documents (``Document`` or str).
        text_field: the text column of jsonl/parquet rows.
        batch_size, batch_chars: a batch (one knowledge-base write per level) holds up to
            ``batch_size`` documents and closes early at ``batch_chars`` characters.
        store, run_id, nodes, tokenizer, metadata_cap: without a learner (or to override it).
            The default store is ``sqlite:///runs/<run_id>/kb``; the default run id is new
            each call.
        tokenizer_name: kato-lm's separate argument; it must agree with the learner's.
        checkpoint_interval, on_checkpoint: call ``on_checkpoint(completed_batch_ids, stats)``
            every ``checkpoint_interval`` documents and at the end.
        skip_batches: batch ids completed by an earlier attempt of this run (resume).
        detached, keep_nodes: keep the node actors after the run (see ``attach_nodes``).
        resume_from_checkpoint: kato-lm's flag; resume here with ``run_id`` + ``skip_batches``.
        profiler: accepted and ignored (kato-lm required one; nothing needs it here).

    Returns:
        ``samples_processed``, ``tokens_processed``, ``total_time_seconds``,
        ``rate_samples_per_sec``, ``rate_tokens_per_sec``, ``num_workers``, ``run_id``, ``store``,
        and per level ``node{i}_patterns`` (unique patterns in the knowledge base),
        ``node{i}_observations`` (learn events of this run), ``node{i}_unlearned`` (symbols
        left at document ends), ``node{i}_reuse_rate`` (1 - new patterns / observations).

    Raises:
        ConfigError: bad arguments (named); DocumentError / CorpusError: a bad document (named).
    """
    del profiler
    if resume_from_checkpoint:
        raise ConfigError("resume_from_checkpoint: resume a run with katoray.jobs.resume_run(run_id, runs_dir) "
                          "or `katoray resume RUN_ID` (they read the run's checkpoint); or pass run_id= and "
                          "skip_batches=<completed batch ids> here")
    spec, local_kbs = _run_spec(learner, num_levels, num_workers, segment_method, nodes, tokenizer, tokenizer_name,
                                store, run_id, metadata_cap, Batching(text_field, batch_size, batch_chars))
    shards = plan_shards(data, dataset_key, text_field, max_samples)
    stats = run_training(spec, shards, verbose=verbose, checkpoint_interval=checkpoint_interval,
                         on_checkpoint=on_checkpoint, skip_batches=skip_batches, detached=detached,
                         keep_nodes=keep_nodes, local_kbs=local_kbs)
    return {**stats, "store": _redacted(spec.store)}


# -- the run spec --------------------------------------------------------------------------------
def _run_spec(learner: Any, num_levels: int, num_workers: int, segment_method: str, nodes, tokenizer,
              tokenizer_name, store, run_id, metadata_cap, batching: Batching) -> tuple[RunSpec, list | None]:
    if learner is not None and nodes is not None:
        raise ConfigError("pass either learner= or nodes=, not both (the learner already has its nodes)")
    tokenizer = _one_tokenizer(learner, tokenizer, tokenizer_name)
    run_id = run_id or getattr(learner, "run_id", None) or new_run_id()
    _check_run_id(run_id)
    store = _store_url(store or getattr(learner, "store", None), run_id)
    cap = metadata_cap or getattr(learner, "metadata_cap", None) or DEFAULT_METADATA_CAP
    configs = list(learner.node_configs if learner is not None else
                   nodes or [HierarchicalNode(f"node{i}") for i in range(num_levels)])
    hierarchy = HierarchyConfig.from_nodes(configs, num_levels, cap)
    used = configs[:hierarchy.num_levels]
    store = _server_store(used) or store   # nodes with a base_url: their knowledge bases are the server's
    node_ids = tuple(learner.node_id(i) if hasattr(learner, "node_id") else n.name for i, n in enumerate(used))
    spec = RunSpec(run_id, store, node_ids, tuple(n.session_config.to_dict() for n in used), hierarchy,
                   tokenizer, segment_method, batching, num_workers)
    same_store = learner is not None and store == getattr(learner, "store", None)
    return spec, (list(learner.kbs[:hierarchy.num_levels]) if same_store and hasattr(learner, "kbs") else None)


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


def _store_url(store: str | None, run_id: str) -> str:
    if store is None:
        return f"sqlite:///{(Path.cwd() / DEFAULT_RUNS_DIR / run_id / 'kb').as_posix()}"
    if not isinstance(store, str):
        raise ConfigError(f"store must be a URL string (sqlite:///dir, mongodb://..., memory://), got {store!r}")
    prefix = "sqlite:///"
    if store.lower().startswith(prefix) and not store[len(prefix):].startswith("/"):
        return prefix + (Path.cwd() / store[len(prefix):]).as_posix()   # actors may run elsewhere
    return store


def new_run_id() -> str:
    """A fresh run id: UTC time plus randomness, sortable (``20261126-123015-3fa9c2``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _check_run_id(run_id: Any) -> None:
    if not isinstance(run_id, str) or not run_id or any(c in run_id for c in "/\\ \t\n"):
        raise ConfigError(f"run_id must be a non-empty string without slashes or spaces, got {run_id!r}")


def _redacted(url: str) -> str:
    from katoray.store import redact_url

    return redact_url(url)
