"""The training driver: corpus shards -> Ray Data -> mapper pool -> node actors, with live stats.

    shards --CorpusDatasource--> rows of document batches --HierarchyMapper pool--> deltas
        --NodeActor.apply (one per level, idempotent by batch key)--> knowledge bases
    the driver reads one small stats row per finished batch: progress, statistics, checkpoints

Work in flight is bounded by Ray Data's backpressure (a CPU budget of pool + reads) and by the
mappers, which wait for every node's acknowledgement before taking the next batch. The map is
order-free, so no ordering is imposed: the knowledge bases come out identical for any number of
workers. A finished row means its batch is durable at every level; ``completed`` is exactly the
set of batch ids a resume may skip. Statistics and the progress line live in
:mod:`katoray.runtime.progress`; the node actors' lifecycle and the knowledge bases' claims in
:mod:`katoray.runtime.sinks`.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Sequence, TextIO, TypeVar

from katoray.errors import ConfigError, KatorayError
from katoray.runtime import options
from katoray.runtime.progress import ProgressLine, TrainingStats
from katoray.runtime.sinks import NodeSink
from katoray.runtime.source import make_datasource, start_reader_process
from katoray.runspec import RunSpec
from katoray.text.shards import Shard, batching_fingerprint
from katoray.text.tokenizers import TextTokenizer, load_tokenizer

PROBE_TIMEOUT_S = 5.0          # a Ray address that does not answer a TCP connection by then is down
ACTOR_WAIT_S = 600             # the pool's actors must be up by then (Ray Data's default: forever)
CheckpointHook = Callable[[frozenset, dict], None]
T = TypeVar("T")

log = logging.getLogger(__name__)


# -- Ray ---------------------------------------------------------------------------------------
def ensure_ray(spec: RunSpec) -> bool:
    """Use the Ray this process is connected to; else join ``RAY_ADDRESS`` (a job on a
    cluster); else start a private local one sized for this run. True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):   # worker logs only when verbose, as on a private Ray: errors stay one line
        check_reachable(os.environ["RAY_ADDRESS"])
        ray.init(logging_level="WARNING", log_to_driver=spec.verbose)
    else:
        cpus = options.local_num_cpus(len(spec.all_kb_ids), spec.workers)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=spec.verbose)
    _quiet_sigterm()
    return True


def ray_up_while(spec: RunSpec, address: str | None, load: Callable[[], T]) -> T:
    """Join or start the run's Ray (``connect_ray``, ``ensure_ray``) and meanwhile call ``load``
    (the run's tokenizer) in a thread; returns what ``load`` returned, or raises what it raised
    once Ray is up (a Ray start cannot be cut short).

    Starting a local Ray takes about 4 s here, mostly waiting for its processes, and loading a
    tokenizer folder about 1.5 s, mostly importing transformers: one under the other, a run's
    first batch comes that much sooner. Ray itself is imported before the thread starts: what
    ``ray.init`` imports after that (274 modules) and what loading a tokenizer imports (462,
    transformers') have none in common, so the threads never import one module at once (two
    threads in one circular import can leave one of them a half-initialised module).
    """
    import ray  # noqa: F401

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = load()
        except BaseException as err:   # handed to the caller, raised there
            outcome["error"] = err

    worker = threading.Thread(target=work, name="katoray-load", daemon=True)
    worker.start()
    connect_ray(address)
    ensure_ray(spec)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _quiet_sigterm() -> None:
    """Ray's core worker installs a C-level SIGTERM handler that dumps a stack trace (``*** SIGTERM
    received ... PC:``) before Python's handler runs; registering Python's handler again (Ray's own,
    which ends the driver with SystemExit) takes the signal back, so ``kill`` or ``ray job stop``
    ends in the command's one resume line."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGTERM))


def _warn_if_too_small(spec: RunSpec) -> None:
    """Say so when the cluster cannot hold this run's actors (Ray Data would wait for them; an
    autoscaling cluster may still grow, so this is a warning, and the wait is bounded)."""
    import ray

    nodes = len(spec.all_kb_ids) * options.NODE_NUM_CPUS
    need = nodes + spec.workers * options.MAPPER_NUM_CPUS + options.READ_NUM_CPUS
    have = ray.cluster_resources().get("CPU", 0.0)
    if need > have:
        log.warning("this run needs %.2f logical CPUs (%d workers x %.2f, node actors %.2f, reads %.2f) but the "
                    "Ray cluster has %.2f now; lower the workers or give Ray more num_cpus. Waiting up to %d s "
                    "for actors to fit.", need, spec.workers, options.MAPPER_NUM_CPUS, nodes,
                    options.READ_NUM_CPUS, have, ACTOR_WAIT_S)


def connect_ray(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``, ``ray://...``) unless already connected."""
    if address is None:
        return          # the runtime joins RAY_ADDRESS if set, else starts a local Ray sized for the run
    import ray

    if ray.is_initialized():
        return
    check_reachable(address)
    try:
        ray.init(address=address, logging_level="WARNING")
    except ConnectionError as err:
        raise _unreachable(address, err) from err
    _quiet_sigterm()


def check_reachable(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """ConfigError at once if nothing answers at a ``host:port`` (or ``ray://host:port``) Ray
    address: ``ray.init`` would retry for minutes, printing a warning every few seconds. Other
    forms (``auto``, ``local``) are Ray's to resolve."""
    where = address.removeprefix("ray://")
    host, sep, port = where.rpartition(":")
    if "://" in where or not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise _unreachable(address, err) from err


def _unreachable(address: str, err: BaseException) -> ConfigError:
    return ConfigError(f"cannot join the Ray cluster at {address!r} ({type(err).__name__}: {err}); start it (ray start "
                       "--head), fix the address, or leave the address out to train on a private local Ray")


# -- the run ---------------------------------------------------------------------------------------
def run_training(spec: RunSpec, shards: Sequence[Shard], *, on_checkpoint: CheckpointHook | None = None,
                 skip_batches: Iterable[str] = (), detached: bool = False, keep_nodes: bool = False,
                 progress_stream: TextIO | None = None,
                 tokenizer: TextTokenizer | None = None) -> dict[str, Any]:
    """Train the hierarchy of ``spec`` on ``shards``; returns the run's statistics.

    Args:
        on_checkpoint: every ``spec.checkpoint_interval`` documents (and once at the end)
            ``on_checkpoint(completed_batch_ids, statistics)`` is called; every id in the set is
            durable at every level.
        skip_batches: batch ids already completed (resume): they are not read again.
        detached, keep_nodes: node actors outlive the driver (``detached``), or stay up after the
            run in this driver (``keep_nodes``; re-attach with ``attach_nodes(run_id)``).
        progress_stream: where the progress line goes when ``spec.verbose`` (default stderr).
        tokenizer: the run's tokenizer, already loaded (default: loaded here, on the driver, so
            an unknown name fails now, not as a pool actor that died in its constructor).

    Returns:
        ``samples_processed``, ``tokens_processed``, ``total_time_seconds``,
        ``rate_samples_per_sec``, ``rate_tokens_per_sec``, ``num_workers``, ``run_id``, and per
        level ``node{i}_patterns`` (unique patterns in the knowledge base),
        ``node{i}_observations`` (learn events of this run), ``node{i}_unlearned`` (symbols
        left at document ends), ``node{i}_reuse_rate`` (1 - new patterns / observations); the
        CPU seconds and peak memory of each role.

    Raises:
        DocumentError / CorpusError: a document could not be read or learned (named in the message).
    """
    tokenizer = tokenizer or load_tokenizer(spec.tokenizer)
    ensure_ray(spec)   # a Ray started here stays up: the caller may train again or analyse
    _warn_if_too_small(spec)
    sink = NodeSink(spec, detached)
    start_reader_process()   # while the node actors and the pool start (Ray Data starts it after them)
    progress = ProgressLine((progress_stream or sys.stderr) if spec.verbose else None)
    checkpoint = _Checkpointer(spec.checkpoint_interval, on_checkpoint)
    try:
        stats = TrainingStats(spec.num_levels, spec.workers)
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
    key_prefix = f"{spec.run_id}/{batching_fingerprint(spec.batching, shards)}/"
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

    from katoray.runtime.mapper import HierarchyMapper

    source = make_datasource(shards, spec.batching, skip)
    reads = ray.data.read_datasource(source, override_num_blocks=max(1, len(shards)), **options.READ_OPTIONS)
    mapper_args = {"hierarchy": spec.hierarchy, "tokenizer": tokenizer, "segment_method": spec.segment_method,
                   "batch_key_prefix": key_prefix, "run_id": spec.run_id,
                   "kb_ids": [list(ids) for ids in spec.kb_ids]}
    out = reads.map_batches(HierarchyMapper, fn_constructor_kwargs=mapper_args,
                            compute=_pool(spec.workers), **options.MAPPER_OPTIONS)
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
    budget = spec.workers * options.MAPPER_NUM_CPUS + 2 * options.READ_NUM_CPUS
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
