"""``katoray train`` and ``katoray resume`` (and ``scripts/train.py``, a Ray job's entry point)."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any

from katoray.cli.common import (EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, MONGO_ENV, Help, Usage, add_command, count, fail,
                                positive, say, shard_counts, sizes, store_arg)
from katoray.config import (DEFAULT_CHUNK_SIZE, DEFAULT_LEVELS, DEFAULT_RUNS_DIR, MODES, SEGMENT_METHODS,
                            TrainConfig, field_default, new_run_id)
from katoray.errors import ConfigError, DocumentError, KatorayError
from katoray.jobs.run import RunRecordError


def add_parsers(commands) -> None:
    add_train_arguments(add_command(
        commands, "train", "train a hierarchy (with no options: the built-in demo run)",
        "Train a hierarchy of KATO learners on a corpus, on Ray, as a durable run in "
        "<runs-dir>/<run-id>/ (manifest.json, checkpoint.json, kb/).", train_command))
    _add_resume(commands)


def job_parser() -> argparse.ArgumentParser:
    """``scripts/train.py``'s parser: ``train``'s options, as a Ray job's entry point."""
    parser = argparse.ArgumentParser(prog="scripts/train.py", formatter_class=Help,
                                     description="katoray train, as a Ray job entry point (joins the job's "
                                                 "cluster; every path it writes is absolute).")
    add_train_arguments(parser, job=True)
    parser.set_defaults(handler=lambda args: train_command(args, job=True))
    return parser


def add_train_arguments(parser: argparse.ArgumentParser, job: bool = False) -> None:
    """``train``'s options (also ``scripts/train.py``'s; ``job``: running as a Ray job)."""
    def default(name: str):   # each option's default is its TrainConfig field's
        return field_default(TrainConfig, name)

    group = parser.add_argument_group("corpus")
    corpus = group.add_mutually_exclusive_group()
    corpus.add_argument("--data", metavar="PATH", help="a corpus file or folder (.txt, .jsonl, .parquet, optionally "
                        ".gz); default: the built-in corpus (Python's documentation topics, no download)")
    corpus.add_argument("--dataset", metavar="KEY", help="a registered Hugging Face dataset key (wikitext, c4, ...) "
                        "or 'pydoc'")
    group.add_argument("--text-field", default=default("text_field"), metavar="NAME",
                       help="text column of jsonl/parquet rows")
    group.add_argument("--max-samples", type=count, metavar="N", help="train on the first N documents only "
                       "(default: all)")
    hierarchy = parser.add_argument_group("hierarchy")
    hierarchy.add_argument("--tokenizer", metavar="NAME|PATH", help="a Hugging Face tokenizer name or a local "
                           "folder (default: the built-in katoray-bytes, no download)")
    hierarchy.add_argument("--levels", "--nodes", type=positive, metavar="N", help="hierarchy levels (default: "
                           f"{DEFAULT_LEVELS}, or one per --chunk-sizes value)")
    hierarchy.add_argument("--chunk-sizes", type=sizes, metavar="8,8,8,8", help="tokens (node0) or child pattern "
                           f"names per pattern, per level; one value applies to every level (default: {DEFAULT_CHUNK_SIZE} per level)")
    hierarchy.add_argument("--mode", choices=MODES, default=default("mode"), help="chunking: fixed "
                           "runs of chunk-size symbols; structure: sentences, paragraphs, sections, documents")
    hierarchy.add_argument("--segment-method", choices=SEGMENT_METHODS, default=default("segment_method"),
                           help="how documents are split into sentences, paragraphs and sections")
    hierarchy.add_argument("--metadata-cap", type=positive, default=default("metadata_cap"), metavar="N",
                           help="values kept per metadata key per pattern")
    run = parser.add_argument_group("run")
    run.add_argument("--store", metavar="URL",
                     help="knowledge-base URL: sqlite:///relative/dir, sqlite:////absolute/dir (four slashes), or "
                     f"mongodb://host:port/; 'mongodb' alone takes the URL from ${MONGO_ENV} (default: sqlite in "
                     "the run folder)")
    run.add_argument("--shards", type=shard_counts, default=default("shards"), metavar="N|4,2,1,1",
                     help="knowledge bases per level, each with its own node actor, spread over the cluster's "
                     "machines; patterns go to a shard by name (one count for every level, or one per level)")
    run.add_argument("--run-id", help="the run's id (default: UTC time + a random suffix)")
    run.add_argument("--runs-dir", required=job, default=None if job else default("runs_dir"), metavar="DIR",
                     help="folder of run folders" + (" (required for a Ray job, absolute: the job runs in a "
                                                     "temporary copy of the working dir)" if job else ""))
    run.add_argument("--workers", type=positive, default=default("workers"), metavar="N",
                     help="mapper actors (each tokenizes and maps batches)")
    run.add_argument("--batch-size", type=positive, default=default("batch_size"), metavar="N",
                     help="documents per batch (one knowledge-base write per level)")
    run.add_argument("--batch-chars", type=count, default=default("batch_chars"), metavar="N",
                     help="characters that close a batch early (0: no limit)")
    run.add_argument("--first-batch-chars", type=count, default=default("first_batch_chars"), metavar="N",
                     help="characters that close the run's first batch; each next one of its shard holds twice "
                          "as many, up to --batch-chars (0: every batch at --batch-chars)")
    run.add_argument("--checkpoint-interval", type=positive, default=default("checkpoint_interval"), metavar="N",
                     help="documents between checkpoints")
    _add_common_run_flags(run, address_default="auto" if job else None)


def _add_common_run_flags(group, address_default: str | None = None) -> None:
    group.add_argument("--address", default=address_default, help="join this Ray cluster ('auto': the local "
                       "cluster or $RAY_ADDRESS; default: $RAY_ADDRESS if set, else a private local Ray)")
    group.add_argument("--json", action="store_true", help="print the final statistics as one JSON object on the "
                       "last line of stdout")
    group.add_argument("--quiet", action="store_true", help="no progress line and no run banner")


def _add_resume(commands) -> None:
    parser = add_command(commands, "resume", "continue an interrupted run",
                         "Continue a run where its last checkpoint left it. The run's configuration comes from "
                         "its manifest; a corpus or tokenizer that changed since is refused.", resume_command)
    parser.add_argument("run_id", metavar="RUN_ID", help="id of the run to continue (its folder in --runs-dir)")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, metavar="DIR", help="folder of run folders")
    parser.add_argument("--workers", type=positive, metavar="N", help="mapper actors (default: the run's)")
    parser.add_argument("--checkpoint-interval", type=positive, metavar="N",
                        help="documents between checkpoints (default: the run's)")
    parser.add_argument("--store", metavar="URL", help=f"the run's MongoDB URL with its password (default: "
                        f"${MONGO_ENV}; the manifest keeps no password)")
    _add_common_run_flags(parser)


# -- commands ----------------------------------------------------------------------------------------
def train_command(args: argparse.Namespace, job: bool = False) -> int:
    from katoray.jobs.run import start_run

    if job:
        _check_job_paths(args)
    config = TrainConfig(
        levels=args.levels, chunk_sizes=args.chunk_sizes, mode=args.mode, segment_method=args.segment_method,
        tokenizer=args.tokenizer, data=args.data, dataset=args.dataset, text_field=args.text_field,
        max_samples=args.max_samples, batch_size=args.batch_size, batch_chars=args.batch_chars or None,
        first_batch_chars=args.first_batch_chars or None,
        metadata_cap=args.metadata_cap, store=store_arg(args.store), shards=args.shards,
        run_id=args.run_id or new_run_id(),
        runs_dir=args.runs_dir, workers=args.workers, checkpoint_interval=args.checkpoint_interval,
        verbose=not args.quiet, address=args.address)
    if not args.quiet:
        shards = "" if set(config.shards) == {1} else f", shards {','.join(map(str, config.shards))}"
        say(f"katoray run {config.run_id} in {config.run_dir} ({_corpus_text(config)}, {config.levels} levels, "
             f"chunk sizes {','.join(map(str, config.chunk_sizes))}, {config.mode}{shards})")
    return _report(lambda: start_run(config), args, config.run_id, config.runs_dir)


def resume_command(args: argparse.Namespace) -> int:
    from katoray.jobs.run import resume_run

    overrides: dict[str, Any] = {"verbose": not args.quiet}
    for key in ("workers", "checkpoint_interval", "address"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    store = args.store or _mongo_env_for_resume(args.run_id, args.runs_dir)
    if store is not None:
        overrides["store"] = store
    if not args.quiet:
        say(f"katoray resume {args.run_id} in {os.path.abspath(args.runs_dir)}")
    return _report(lambda: resume_run(args.run_id, args.runs_dir, **overrides), args, args.run_id, args.runs_dir)


def _report(train, args: argparse.Namespace, run_id: str, runs_dir: str) -> int:
    """Run ``train``; print the statistics (or JSON); say how to resume if it stopped."""
    try:
        stats = train()
    except (KeyboardInterrupt, SystemExit) as err:     # Ctrl-C; SIGTERM (Ray's own handler raises SystemExit)
        fail(f"interrupted; continue with: katoray resume {run_id} --runs-dir {os.path.abspath(runs_dir)}")
        return EXIT_INTERRUPTED if isinstance(err, KeyboardInterrupt) else EXIT_TERMINATED
    except (ConfigError, DocumentError) as err:   # bad settings or input: resuming would fail the same way
        fail(str(err))
        return EXIT_ERROR
    except RunRecordError as err:                 # its message says how to continue
        fail(str(err))
        return EXIT_ERROR
    except KatorayError as err:
        fail(str(err) + _resume_hint(run_id, runs_dir))
        return EXIT_ERROR
    if stats.get("resumed") is False and not args.quiet:
        say(f"run {run_id} had already finished ({stats.get('samples_processed', 0):,} documents): nothing to do")
    print(json.dumps(stats, sort_keys=True, default=str) if args.json else _summary(stats), flush=True)
    return 0


# -- output -------------------------------------------------------------------------------------------
def _summary(stats: dict[str, Any]) -> str:
    seconds = stats.get("total_time_seconds", 0.0)
    lines = [f"run {stats['run_id']} {stats.get('status', '')}: {stats.get('samples_processed', 0):,} documents, "
             f"{stats.get('tokens_processed', 0):,} tokens in {seconds:,.1f} s "
             f"({stats.get('rate_tokens_per_sec', 0):,.0f} tokens/s, {stats.get('attempts', 1)} attempt(s))"]
    level, notes = 0, []
    while f"node{level}_patterns" in stats:
        unlearned = stats.get(f"node{level}_unlearned", 0)
        shards = f" in {stats[f'node{level}_shards']} shards" if f"node{level}_shards" in stats else ""
        lines.append(f"  node{level}: {stats[f'node{level}_patterns']:,} patterns{shards}, "
                     f"{stats.get(f'node{level}_observations', 0):,} learns, "
                     + (f"{unlearned:,} symbols left unlearned, " if unlearned else "")
                     + f"reuse {100 * stats.get(f'node{level}_reuse_rate', 0.0):.1f}%"
                     + _usage_text(stats, f"node{level}"))
        if stats[f"node{level}_patterns"] == 0 and unlearned:
            notes.append(f"note: node{level} learned nothing: each unit it was given had a single symbol (a "
                         f"pattern needs two), e.g. one paragraph per chapter in structure mode; use fewer --nodes, "
                         f"another --segment-method, or chunking mode")
        level += 1
    if stats.get("mapper_cpu_seconds") is not None:
        lines.append(f"  pool:{_usage_text(stats, 'mapper')[1:]}; driver:{_usage_text(stats, 'driver')[1:]}")
    if stats.get("empty_documents"):
        notes.append(f"note: {stats['empty_documents']:,} document(s) had no text and taught nothing")
    if not stats.get("samples_processed") and stats.get("resumed") is not False:
        notes.append("note: no documents were read (the corpus holds no rows, or only blank lines, or --max-samples "
                     "is 0): nothing was learned")
    lines.extend(notes)
    lines.append(f"manifest: {os.path.join(stats.get('run_dir', ''), 'manifest.json')}")
    return "\n".join(lines)


def _usage_text(stats: dict[str, Any], role: str) -> str:
    """", 1.2 CPU s, 180 MiB peak" for a role of the run's statistics ("" if not reported)."""
    cpu, peak = stats.get(f"{role}_cpu_seconds"), stats.get(f"{role}_peak_rss_mb")
    if cpu is None:
        return ""
    return f", {cpu:,.1f} CPU s" + (f", {peak:,.0f} MiB peak" if peak is not None else "")


def _corpus_text(config) -> str:
    corpus = config.data or config.dataset
    return corpus + (f", first {config.max_samples:,} documents" if config.max_samples is not None else "")


def _resume_hint(run_id: str, runs_dir: str) -> str:
    """How to continue, if the run got as far as a manifest and stopped."""
    from katoray.jobs.manifest import FAILED, TrainingManifest

    folder = os.path.join(os.path.abspath(runs_dir), run_id)
    try:
        status = TrainingManifest.load(folder).status
    except (KatorayError, OSError, ValueError):
        return ""
    return f" (the run stopped; continue it with: katoray resume {run_id} --runs-dir {os.path.dirname(folder)})" \
        if status == FAILED else ""


def _mongo_env_for_resume(run_id: str, runs_dir: str) -> str | None:
    """$MONGO_URI, when the run's store is MongoDB (it gives the manifest's URL its password)."""
    from katoray.jobs.runs import load_manifest

    if not os.environ.get(MONGO_ENV):
        return None
    store = load_manifest(run_id, runs_dir).store
    return os.environ[MONGO_ENV] if store.lower().startswith("mongodb") else None


def _check_job_paths(args: argparse.Namespace) -> None:
    """A Ray job runs in a temporary copy of its working dir: what it writes must go elsewhere."""
    if not os.path.isabs(args.runs_dir):
        raise Usage(f"--runs-dir must be an absolute path in a Ray job (got {args.runs_dir!r}): the job's working "
                     "directory is a temporary copy, deleted with the job")
    store = args.store or ""
    if store.lower().startswith("sqlite:///") and not store[len("sqlite:///"):].startswith("/"):
        raise Usage(f"--store {store!r} is relative; in a Ray job use an absolute path (sqlite:////abs/dir)")

