"""The notebook's training functions with kato-lm's checkpoint arguments, over durable runs.

``train_from_streaming_dataset(..., checkpoint_dir="runs")`` starts a durable run (manifest and
checkpoints in ``<checkpoint_dir>/<run_id>/``), and ``resume_from_checkpoint=True`` continues the
learner's run (``HierarchicalConceptLearner(run_id=...)`` or ``run_id=``) where its last
checkpoint left it. Without either, training goes straight to the Ray runtime
(``katoray.runtime.train``), e.g. into a learner's in-memory store.
"""
from __future__ import annotations

from typing import Any

from katoray.errors import ConfigError
from katoray.jobs.run import TrainConfig, resume_run, start_run
from katoray.runtime import train as runtime


def train_from_streaming_dataset_parallel(dataset_key: str | None = None, max_samples: int | None = None,
                                          learner: Any = None, num_levels: int = 4, num_workers: int = 4,
                                          segment_method: str = "simple", verbose: bool = True, *,
                                          checkpoint_dir: str | None = None, resume_from_checkpoint: bool = False,
                                          checkpoint_interval: int | None = None, run_id: str | None = None,
                                          **kwargs: Any) -> dict[str, Any]:
    """``katoray.runtime.train.train_from_streaming_dataset_parallel`` plus durable runs.

    Args (beyond the runtime's):
        checkpoint_dir: a runs folder: train as a durable run there (manifest + checkpoints).
        resume_from_checkpoint: continue the run ``run_id`` (or ``learner.run_id``) found in
            ``checkpoint_dir`` (default ``runs``).
        checkpoint_interval: documents between checkpoints of a durable run.
    """
    run_id = run_id or getattr(learner, "run_id", None)
    if resume_from_checkpoint:
        if not run_id:
            raise ConfigError("resume_from_checkpoint needs the run's id: pass run_id=..., or a learner built "
                              "with HierarchicalConceptLearner(run_id=...)")
        return resume_run(run_id, checkpoint_dir or "runs", workers=num_workers, verbose=verbose)
    if checkpoint_dir is None:
        return runtime.train_from_streaming_dataset_parallel(
            dataset_key, max_samples, learner, num_levels, num_workers, segment_method, verbose, run_id=run_id,
            checkpoint_interval=checkpoint_interval, **kwargs)
    return start_run(_durable_config(dataset_key, max_samples, learner, num_levels, num_workers, segment_method,
                                     verbose, checkpoint_dir, checkpoint_interval, run_id, kwargs))


def train_from_streaming_dataset(dataset_key: str | None = None, max_samples: int | None = None, learner: Any = None,
                                 num_levels: int = 4, segment_method: str = "simple", verbose: bool = True,
                                 **kwargs: Any) -> dict[str, Any]:
    """The same with one worker (the notebook's sequential name)."""
    if "num_workers" in kwargs:
        raise ConfigError("train_from_streaming_dataset uses one worker; call "
                          "train_from_streaming_dataset_parallel(num_workers=...) for more")
    return train_from_streaming_dataset_parallel(dataset_key, max_samples, learner, num_levels, 1, segment_method,
                                                 verbose, **kwargs)


def _durable_config(dataset_key, max_samples, learner, num_levels, num_workers, segment_method, verbose,
                    checkpoint_dir, checkpoint_interval, run_id, kwargs) -> TrainConfig:
    unsupported = set(kwargs) - {"data", "text_field", "batch_size", "batch_chars", "store", "tokenizer",
                                 "metadata_cap", "tokenizer_name"}
    if unsupported:
        raise ConfigError(f"{sorted(unsupported)} cannot be used with checkpoint_dir (a durable run); "
                          "drop them, or train without checkpoint_dir")
    nodes = list(learner.node_configs[:num_levels]) if learner is not None else None
    tokenizer = kwargs.get("tokenizer") or kwargs.get("tokenizer_name") or getattr(learner, "tokenizer_name", None)
    extra = {k: kwargs[k] for k in ("data", "text_field", "batch_size", "batch_chars", "metadata_cap") if k in kwargs}
    if checkpoint_interval is not None:
        extra["checkpoint_interval"] = checkpoint_interval
    return TrainConfig(nodes=len(nodes) if nodes else num_levels,
                       chunk_sizes=tuple(n.chunk_size for n in nodes) if nodes else None,
                       mode=nodes[0].mode if nodes else "chunking", segment_method=segment_method,
                       tokenizer=tokenizer, dataset=dataset_key, max_samples=max_samples,
                       store=kwargs.get("store") or _durable_store(learner), run_id=run_id,
                       runs_dir=checkpoint_dir, workers=num_workers, verbose=verbose, **extra)


def _durable_store(learner: Any) -> str | None:
    """The learner's store if it outlives the process; None (the run folder's sqlite) otherwise."""
    store = getattr(learner, "store", None)
    return None if store is None or store.startswith("memory://") else store
