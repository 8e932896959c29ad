"""The training driver: corpus shards -> Ray Data -> mapper pool -> node actors, with live stats.

    shards --CorpusDatasource--> rows of document batches --HierarchyMapper pool--> deltas
        --NodeActor.apply (one per level, idempotent by batch key)--> knowledge bases
    the driver reads one small stats row per finished batch: progress, statistics, checkpoints

Work in flight is bounded by Ray Data's backpressure (a CPU budget of pool + reads) and by the
mappers, which wait for every node's acknowledgement before taking the next batch. The map is
order-free, so no ordering is imposed: the knowledge bases come out identical for any number of
workers. A finished row means its batch is durable at every level; ``completed`` is exactly the
set of batch ids a resume may skip. Statistics and the progress line live in
:mod:`katoray.runtime.progress`; where deltas go (node actors, or the driver for ``memory://``),
in :mod:`katoray.runtime.sinks`.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, TextIO

from katoray.errors import ConfigError, KatorayError
from katoray.hierarchy.config import HierarchyConfig
from katoray.runtime import options
from katoray.runtime.progress import ProgressLine, TrainingStats
from katoray.runtime.sinks import DriverSink, NodeSink
from katoray.runtime.source import Batching, Shard, make_datasource
from katoray.text.tokenizers import TextTokenizer, load_tokenizer

ACTOR_WAIT_S = 600             # the pool's actors must be up by then (Ray Data's default: forever)
CheckpointHook = Callable[[frozenset, dict], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs besides its corpus (small and picklable)."""

    run_id: str
    store: str                             # knowledge-base URL (absolute paths for sqlite)
    node_ids: tuple[str, ...]              # KATO node id per level (kb id = <node_id>_kato)
    session_configs: tuple[dict, ...]      # KATO session settings per level
    hierarchy: HierarchyConfig
    tokenizer: str | None                  # name or absolute folder; None = built-in default
    segment_method: str = "simple"
    batching: Batching = Batching()        # documents per batch (per row, per node write)
    num_workers: int = 4                   # mapper pool actors

    def __post_init__(self) -> None:
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ConfigError(f"num_workers must be an integer >= 1, got {self.num_workers!r}")
        if len(self.node_ids) != self.hierarchy.num_levels or len(self.session_configs) != self.hierarchy.num_levels:
            raise ConfigError(f"need one node id and one session config per level ({self.hierarchy.num_levels})")

    @property
    def num_levels(self) -> int:
        return self.hierarchy.num_levels

    @property
    def is_local_store(self) -> bool:
        """``memory://`` lives inside one process: the driver applies the deltas itself."""
        return self.store.lower().startswith("memory://")


# -- Ray ---------------------------------------------------------------------------------------
def ensure_ray(spec: RunSpec, verbose: bool = True) -> bool:
    """Use the Ray this process is connected to; else join ``RAY_ADDRESS`` (a job on a
    cluster); else start a private local one sized for this run. True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level="WARNING")
        return True
    cpus = max(2, math.ceil(options.cpus_needed(spec.num_levels, spec.num_workers)))
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="WARNING",
             log_to_driver=verbose)
    return True


def _load_tokenizer_here(spec: RunSpec) -> TextTokenizer:
    """Load the tokenizer once on the driver: an unknown name fails now with its ConfigError,
    not later as a pool actor that died in its constructor; the pool receives this one."""
    return load_tokenizer(spec.tokenizer)


def _warn_if_too_small(spec: RunSpec) -> None:
    """Say so when the cluster cannot hold this run's actors (Ray Data would wait for them; an
    autoscaling cluster may still grow, so this is a warning, and the wait is bounded)."""
    import ray

    nodes = 0 if spec.is_local_store else spec.num_levels * options.NODE_NUM_CPUS
    need = nodes + spec.num_workers * options.MAPPER_NUM_CPUS + options.READ_NUM_CPUS
    have = ray.cluster_resources().get("CPU", 0.0)
    if need > have:
        log.warning("this run needs %.2f logical CPUs (%d workers x %.2f, node actors %.2f, reads %.2f) but the "
                    "Ray cluster has %.2f now; lower num_workers or give Ray more num_cpus. Waiting up to %d s "
                    "for actors to fit.", need, spec.num_workers, options.MAPPER_NUM_CPUS, nodes,
                    options.READ_NUM_CPUS, have, ACTOR_WAIT_S)


# -- the run ---------------------------------------------------------------------------------------
def run_training(spec: RunSpec, shards: Sequence[Shard], *, verbose: bool = True,
                 checkpoint_interval: int | None = None, on_checkpoint: CheckpointHook | None = None,
                 skip_batches: Iterable[str] = (), detached: bool = False, keep_nodes: bool = False,
                 local_kbs: Sequence | None = None, progress_stream: TextIO | None = None) -> dict[str, Any]:
    """Train the hierarchy of ``spec`` on ``shards``; returns the run's statistics.

    Args:
        verbose: one live progress line on stderr (or ``progress_stream``).
        checkpoint_interval, on_checkpoint: every ``checkpoint_interval`` documents (and once at
            the end) ``on_checkpoint(completed_batch_ids, statistics)`` is called; every id in
            the set is durable at every level.
        skip_batches: batch ids already completed (resume): they are not read again.
        detached, keep_nodes: node actors outlive the driver (``detached``), or stay up after the
            run in this driver (``keep_nodes``; re-attach with ``attach_nodes(run_id)``).
        local_kbs: the knowledge bases to apply to for a ``memory://`` store (e.g. a learner's).

    Raises:
        DocumentError / CorpusError: a document could not be read or learned (named in the message).
    """
    tokenizer = _load_tokenizer_here(spec)
    ensure_ray(spec, verbose)   # a Ray started here stays up: the caller may train again or analyse
    _warn_if_too_small(spec)
    sink = DriverSink(spec, local_kbs) if spec.is_local_store else NodeSink(spec, detached)
    progress = ProgressLine((progress_stream or sys.stderr) if verbose else None)
    checkpoint = _Checkpointer(checkpoint_interval, on_checkpoint)
    try:
        stats = TrainingStats(spec.num_levels)
        with _ray_data_quiet():
            completed = _drive(spec, tokenizer, shards, sink, stats, progress, frozenset(skip_batches), checkpoint)
        checkpoint.final(completed, stats)
        nodes = sink.node_stats()
        progress.close(stats.progress_text([node["patterns"] for node in nodes]))
        return {**stats.summary(spec, nodes), "checkpoints_saved": checkpoint.calls}
    finally:
        progress.close()
        sink.release(keep=keep_nodes, detached=detached)


@contextmanager
def _ray_data_quiet():
    """Ray Data logs start-up, "progress bars disabled", finish and, for a failing batch, the
    whole traceback to the console; during a run it stays quiet: the progress line is ours and
    errors reach the caller as exceptions."""
    import ray.data  # noqa: F401  (its import configures this logger: set the level after it)

    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            # Fewer batches than workers is fine (a small corpus); Ray Data warns about it.
            warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


class _Checkpointer:
    """Calls the hook each time the document count crosses a multiple of the interval."""

    def __init__(self, interval: int | None, hook: CheckpointHook | None) -> None:
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 1):
            raise ConfigError(f"checkpoint_interval must be an integer >= 1 (documents) or None, got {interval!r}")
        self.interval, self.hook = interval, hook
        self.calls = 0
        self._mark = interval or 0

    def maybe(self, completed: set[str], stats: TrainingStats) -> None:
        if self.hook and self.interval and stats.samples >= self._mark:
            self._call(completed, stats)
            self._mark = (stats.samples // self.interval + 1) * self.interval

    def final(self, completed: set[str], stats: TrainingStats) -> None:
        if self.hook:
            self._call(completed, stats)

    def _call(self, completed: set[str], stats: TrainingStats) -> None:
        self.hook(frozenset(completed), stats.counters())
        self.calls += 1


def _drive(spec: RunSpec, tokenizer: TextTokenizer, shards: Sequence[Shard], sink, stats: TrainingStats, progress: ProgressLine,
           skip: frozenset[str], checkpoint: _Checkpointer) -> set[str]:
    """Run the pipeline, consuming one stats row per finished batch; returns completed batch ids."""
    completed = set(skip)
    if not shards:          # max_samples=0: nothing to read
        return completed
    # Idempotency keys: another run, or other data under the same run id, never looks applied.
    key_prefix = f"{spec.run_id}/{spec.batching.fingerprint(shards)}/"
    dataset = build_dataset(spec, tokenizer, shards, skip, key_prefix)
    try:
        for row in dataset.iter_rows():
            row = dict(row)
            sink.accept(row, key_prefix + row["batch_id"])
            stats.add(row)
            completed.add(row["batch_id"])
            if progress.is_due():
                progress.update(stats.progress_text(sink.live_pattern_counts()))
            checkpoint.maybe(completed, stats)
    except Exception as err:
        found = _user_error(err)
        if found is err:
            raise
        raise found from err
    return completed


def build_dataset(spec: RunSpec, tokenizer: TextTokenizer, shards: Sequence[Shard], skip: frozenset[str],
                  key_prefix: str):
    """Read -> map_batches(HierarchyMapper) with the run's pool and quiet, bounded execution.
    The pool gets ``tokenizer`` itself (pickled), not its name: no actor loads it again."""
    import ray.data

    from katoray.runtime.mapper import HierarchyMapper, hierarchy_to_dict

    source = make_datasource(shards, spec.batching, skip)
    reads = ray.data.read_datasource(source, override_num_blocks=max(1, len(shards)), **options.READ_OPTIONS)
    mapper_args = {"hierarchy": hierarchy_to_dict(spec.hierarchy), "tokenizer": tokenizer,
                   "segment_method": spec.segment_method, "batch_key_prefix": key_prefix,
                   "run_id": None if spec.is_local_store else spec.run_id, "node_ids": list(spec.node_ids)}
    out = reads.map_batches(HierarchyMapper, fn_constructor_kwargs=mapper_args,
                            compute=_pool(spec.num_workers), **options.MAPPER_OPTIONS)
    _quiet_bounded(out.context, spec)
    return out


def _pool(size: int):
    """``size`` actors, each mapping up to ``options.mapper_concurrency(size)`` batches at once."""
    import ray.data

    threads = options.mapper_concurrency(size)
    return ray.data.ActorPoolStrategy(size=size, max_concurrent_calls_per_actor=threads,
                                      enable_true_multi_threading=threads > 1)


def _quiet_bounded(ctx, spec: RunSpec) -> None:
    """This dataset only: no progress bars or start-up banner; one row per block; CPU budget =
    pool + two reads."""
    from ray.data import ExecutionResources

    # Ray Data coalesces a read task's small blocks up to this size; a whole shard would then
    # reach the pool as one input and one actor. One byte: every batch row is its own block.
    ctx.target_max_block_size = 1
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.raise_original_map_exception = True        # a DocumentError reaches the driver as itself
    ctx.wait_for_min_actors_s = ACTOR_WAIT_S        # a pool that cannot be scheduled fails, not hangs
    ctx.execution_options.preserve_order = False   # the map is order-free
    budget = spec.num_workers * options.MAPPER_NUM_CPUS + 2 * options.READ_NUM_CPUS
    ctx.execution_options.resource_limits = ExecutionResources.for_limits(cpu=budget)


def _user_error(err: BaseException) -> BaseException:
    """The katoray error (bad document, bad corpus row, ...) inside Ray's wrappers, if any."""
    seen = set()
    stack = [err]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, KatorayError):
            # A task's error may come back as Ray's dual-class copy of it (an instance of both
            # RayTaskError and the original class) whose message is the whole remote traceback:
            # the original is its ``cause``.
            cause = getattr(current, "cause", None)
            return cause if isinstance(cause, KatorayError) else current
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return err
