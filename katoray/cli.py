"""The ``katoray`` command line, thin over :mod:`katoray.jobs` and :mod:`katoray.server`.

    katoray train                                   # 4 levels of chunk 8 on Python's own docs, ./runs/<run_id>/
    katoray train --data books/ --tokenizer gpt2 --chunk-sizes 8,8,8,8 --workers 4 --json
    katoray resume RUN_ID                           # after a crash, Ctrl-C or a lost machine
    katoray runs list | show RUN_ID | fingerprint RUN_ID | delete RUN_ID [--yes]
    katoray serve --port 8000 --store sqlite:///kb  # KATO's HTTP API over the built-in engine

Exit status: 0 done; 2 a usage or input error (one line on stderr saying what and what to do);
130 interrupted (the run can be resumed). Training output goes to stdout (the run id first, the
statistics last; with ``--json`` the last line is one JSON object); progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Sequence

from katoray.errors import ConfigError, DocumentError, KatorayError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141          # 128 + SIGPIPE, as a shell reports a command whose reader left
MONGO_ENV = "MONGO_URI"     # a MongoDB URL with credentials, kept out of shell history and manifests


# -- the parser -------------------------------------------------------------------------------------
class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help, unless the help already says it in words;
    descriptions keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser(prog: str = "katoray") -> argparse.ArgumentParser:
    from katoray import __version__

    parser = argparse.ArgumentParser(prog=prog, formatter_class=_Help, description=_doc_head())
    parser.add_argument("--version", action="version", version=f"katoray {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_train_arguments(commands.add_parser(
        "train", formatter_class=_Help, help="train a hierarchy (with no options: the built-in demo run)",
        description="Train a hierarchy of KATO learners on a corpus, on Ray, as a durable run in "
                    "<runs-dir>/<run-id>/ (manifest.json, checkpoint.json, kb/)."))
    _add_resume(commands)
    _add_runs(commands)
    _add_serve(commands)
    return parser


def add_train_arguments(parser: argparse.ArgumentParser, job: bool = False) -> None:
    """``train``'s options (also ``scripts/train.py``'s; ``job``: running as a Ray job)."""
    from katoray.jobs.run import DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_WORKERS
    from katoray.runtime.source import DEFAULT_BATCH_CHARS, DEFAULT_BATCH_SIZE
    from katoray.text.segment import SEGMENT_METHODS

    group = parser.add_argument_group("corpus")
    corpus = group.add_mutually_exclusive_group()
    corpus.add_argument("--data", metavar="PATH", help="a corpus file or folder (.txt, .jsonl, .parquet, optionally "
                        ".gz); default: the built-in corpus (Python's documentation topics, no download)")
    corpus.add_argument("--dataset", metavar="KEY", help="a registered Hugging Face dataset key (wikitext, c4, ...) "
                        "or 'pydoc'")
    group.add_argument("--text-field", default="text", metavar="NAME", help="text column of jsonl/parquet rows")
    group.add_argument("--max-samples", type=_count, metavar="N", help="train on the first N documents only "
                       "(default: all)")
    hierarchy = parser.add_argument_group("hierarchy")
    hierarchy.add_argument("--tokenizer", metavar="NAME|PATH", help="a Hugging Face tokenizer name or a local "
                           "folder (default: the built-in katoray-bytes, no download)")
    hierarchy.add_argument("--nodes", type=_positive, metavar="N", help="hierarchy levels (default: 4, or one per "
                           "--chunk-sizes value)")
    hierarchy.add_argument("--chunk-sizes", type=_sizes, metavar="8,8,8,8", help="tokens (node0) or child pattern "
                           "names per pattern, per level; one value applies to every level (default: 8 per level)")
    hierarchy.add_argument("--mode", choices=("chunking", "structure"), default="chunking", help="chunking: fixed "
                           "runs of chunk-size symbols; structure: sentences, paragraphs, sections, documents")
    hierarchy.add_argument("--segment-method", choices=SEGMENT_METHODS, default="simple",
                           help="how documents are split into sentences, paragraphs and sections")
    hierarchy.add_argument("--metadata-cap", type=_positive, default=16, metavar="N",
                           help="values kept per metadata key per pattern")
    run = parser.add_argument_group("run")
    run.add_argument("--store", metavar="URL",
                     help="knowledge-base URL: sqlite:///relative/dir, sqlite:////absolute/dir (four slashes), or "
                     f"mongodb://host:port/; 'mongodb' alone takes the URL from ${MONGO_ENV} (default: sqlite in "
                     "the run folder)")
    run.add_argument("--run-id", help="the run's id (default: UTC time + a random suffix)")
    run.add_argument("--runs-dir", required=job, default=None if job else "runs", metavar="DIR",
                     help="folder of run folders" + (" (required for a Ray job, absolute: the job runs in a "
                                                     "temporary copy of the working dir)" if job else ""))
    run.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS, metavar="N",
                     help="mapper actors (each tokenizes and maps batches)")
    run.add_argument("--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, metavar="N",
                     help="documents per batch (one knowledge-base write per level)")
    run.add_argument("--batch-chars", type=_count, default=DEFAULT_BATCH_CHARS, metavar="N",
                     help="characters that close a batch early (0: no limit)")
    run.add_argument("--checkpoint-interval", type=_positive, default=DEFAULT_CHECKPOINT_INTERVAL, metavar="N",
                     help="documents between checkpoints")
    _add_common_run_flags(run, address_default="auto" if job else None)


def _add_common_run_flags(group, address_default: str | None = None) -> None:
    group.add_argument("--address", default=address_default, help="join this Ray cluster ('auto': the local "
                       "cluster or $RAY_ADDRESS; default: $RAY_ADDRESS if set, else a private local Ray)")
    group.add_argument("--json", action="store_true", help="print the final statistics as one JSON object on the "
                       "last line of stdout")
    group.add_argument("--quiet", action="store_true", help="no progress line and no run banner")


def _add_resume(commands) -> None:
    parser = commands.add_parser("resume", formatter_class=_Help, help="continue an interrupted run",
                                 description="Continue a run where its last checkpoint left it. The run's "
                                             "configuration comes from its manifest; a corpus or tokenizer that "
                                             "changed since is refused.")
    parser.add_argument("run_id", metavar="RUN_ID", help="id of the run to continue (its folder in --runs-dir)")
    parser.add_argument("--runs-dir", default="runs", metavar="DIR", help="folder of run folders")
    parser.add_argument("--workers", type=_positive, metavar="N", help="mapper actors (default: the run's)")
    parser.add_argument("--checkpoint-interval", type=_positive, metavar="N",
                        help="documents between checkpoints (default: the run's)")
    parser.add_argument("--store", metavar="URL", help=f"the run's MongoDB URL with its password (default: "
                        f"${MONGO_ENV}; the manifest keeps no password)")
    _add_common_run_flags(parser)


def _add_runs(commands) -> None:
    runs = commands.add_parser("runs", formatter_class=_Help, help="list, show, fingerprint or delete runs",
                               description="Runs in a runs folder (their manifests and knowledge bases).")
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("list", "one line per run, oldest first"), ("show", "a run's manifest (JSON)"),
                       ("fingerprint", "per level: patterns, total frequency, sha256 over (name, frequency); JSON"),
                       ("delete", "delete a run's knowledge bases and folder")):
        parser = actions.add_parser(name, formatter_class=_Help, help=text, description=text[0].upper() + text[1:] + ".")
        if name != "list":
            parser.add_argument("run_id", metavar="RUN_ID", help="id of the run (its folder in --runs-dir)")
        parser.add_argument("--runs-dir", default="runs", metavar="DIR", help="folder of run folders")
        if name in ("list", "fingerprint", "delete"):
            parser.add_argument("--mongo-uri", default=os.environ.get(MONGO_ENV), metavar="URL",
                                help=f"MongoDB server with credentials, for MongoDB runs (default: ${MONGO_ENV})")
        if name == "list":
            parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
        if name == "delete":
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed when stdin "
                                "is not a terminal)")


def _add_serve(commands) -> None:
    parser = commands.add_parser("serve", formatter_class=_Help, help="serve KATO's HTTP API over the engine",
                                 description="Serve KATO's session API (POST /sessions, observe, learn, "
                                             "predictions, ...) over katoray's engine until interrupted.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=_count, default=8000, help="TCP port (0: any free port)")
    parser.add_argument("--store", default="memory://katoray-server", metavar="URL",
                        help="knowledge bases: memory://name, sqlite:///dir or mongodb://host:port/")


def _doc_head() -> str:
    return __doc__.split("\n\n", 2)[1] if __doc__ else ""


# -- argument types -----------------------------------------------------------------------------------
def _count(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _positive(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as 8,8,8,8, got {text!r}") from None
    if any(size < 2 for size in sizes):
        raise argparse.ArgumentTypeError(f"every chunk size must be >= 2 (KATO learns nothing shorter), got {text!r}")
    return sizes


# -- commands ----------------------------------------------------------------------------------------
def train_command(args: argparse.Namespace, job: bool = False) -> int:
    from katoray.jobs.run import TrainConfig, start_run
    from katoray.runtime.train import new_run_id

    if job:
        _check_job_paths(args)
    config = TrainConfig(
        nodes=args.nodes, chunk_sizes=args.chunk_sizes, mode=args.mode, segment_method=args.segment_method,
        tokenizer=args.tokenizer, data=args.data, dataset=args.dataset, text_field=args.text_field,
        max_samples=args.max_samples, batch_size=args.batch_size, batch_chars=args.batch_chars or None,
        metadata_cap=args.metadata_cap, store=_store(args.store), run_id=args.run_id or new_run_id(),
        runs_dir=args.runs_dir, workers=args.workers, checkpoint_interval=args.checkpoint_interval,
        verbose=not args.quiet, address=args.address)
    if not args.quiet:
        _say(f"katoray run {config.run_id} in {config.run_dir} ({_corpus_text(config)}, {config.nodes} levels, "
             f"chunk sizes {','.join(map(str, config.chunk_sizes))}, {config.mode})")
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
        _say(f"katoray resume {args.run_id} in {os.path.abspath(args.runs_dir)}")
    return _report(lambda: resume_run(args.run_id, args.runs_dir, **overrides), args, args.run_id, args.runs_dir)


def _report(train, args: argparse.Namespace, run_id: str, runs_dir: str) -> int:
    """Run ``train``; print the statistics (or JSON); say how to resume if it stopped."""
    try:
        stats = train()
    except (KeyboardInterrupt, SystemExit) as err:     # Ctrl-C; SIGTERM (Ray's own handler raises SystemExit)
        _fail(f"interrupted; continue with: katoray resume {run_id} --runs-dir {os.path.abspath(runs_dir)}")
        return EXIT_INTERRUPTED if isinstance(err, KeyboardInterrupt) else 128 + signal.SIGTERM
    except (ConfigError, DocumentError) as err:   # bad settings or input: resuming would fail the same way
        _fail(str(err))
        return EXIT_ERROR
    except KatorayError as err:
        _fail(str(err) + _resume_hint(run_id, runs_dir))
        return EXIT_ERROR
    if stats.get("resumed") is False and not args.quiet:
        _say(f"run {run_id} had already finished ({stats.get('samples_processed', 0):,} documents): nothing to do")
    print(json.dumps(stats, sort_keys=True, default=str) if args.json else _summary(stats), flush=True)
    return 0


def runs_command(args: argparse.Namespace) -> int:
    from katoray.jobs import runs

    if args.action == "list":
        found = runs.list_all_training_runs(args.runs_dir, args.mongo_uri)
        print(json.dumps({str(k): v for k, v in found.items()}, sort_keys=True) if args.json else _runs_table(found))
    elif args.action == "show":
        print(json.dumps(runs.load_manifest(args.run_id, args.runs_dir).to_dict(), indent=1))
    elif args.action == "fingerprint":
        print(json.dumps(runs.fingerprint(args.run_id, args.runs_dir, args.mongo_uri), sort_keys=True))
    else:
        done = runs.delete_training_run(args.run_id, args.runs_dir, args.mongo_uri, confirm=not args.yes)
        what = [done["run_dir"] or "", *done["files"], *(f"database {d}" for d in done["databases"])]
        print(f"{'deleted' if done['deleted'] else 'kept'} run {args.run_id}: {', '.join(w for w in what if w)}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from katoray.server import make_server
    from katoray.store import redact_url

    server = make_server(args.host, args.port, args.store)
    host, port = server.server_address[:2]
    _say(f"katoray serve: KATO API on http://{host}:{port} (store {redact_url(args.store)}); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
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
        lines.append(f"  node{level}: {stats[f'node{level}_patterns']:,} patterns, "
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
    lines.extend(notes)
    lines.append(f"manifest: {os.path.join(stats.get('run_dir', ''), 'manifest.json')}")
    return "\n".join(lines)


def _usage_text(stats: dict[str, Any], role: str) -> str:
    """", 1.2 CPU s, 180 MiB peak" for a role of the run's statistics ("" if not reported)."""
    cpu, peak = stats.get(f"{role}_cpu_seconds"), stats.get(f"{role}_peak_rss_mb")
    if cpu is None:
        return ""
    return f", {cpu:,.1f} CPU s" + (f", {peak:,.0f} MiB peak" if peak is not None else "")


def _runs_table(found: dict) -> str:
    if not found:
        return "no runs"
    rows = [("RUN ID", "STATUS", "STARTED", "DOCUMENTS", "TOKENS", "LEVELS", "STORE / DATABASES")]
    for run_id, run in found.items():
        where = run.get("store") or ", ".join(run.get("databases", []))
        rows.append((str(run_id) if run_id is not None else "(no run id)", run.get("status", ""),
                     (run.get("started") or "")[:19], f"{run.get('documents', 0):,}", f"{run.get('tokens', 0):,}",
                     str(run.get("nodes", len(run.get("databases", [])))), where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows)


def _corpus_text(config) -> str:
    corpus = config.data or config.dataset
    return corpus + (f", first {config.max_samples:,} documents" if config.max_samples is not None else "")


def _say(text: str) -> None:
    print(text, flush=True)


def _fail(text: str) -> None:
    print(f"katoray: error: {' '.join(text.split())}", file=sys.stderr, flush=True)


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


# -- stores and paths ------------------------------------------------------------------------------
def _store(url: str | None) -> str | None:
    """``--store``; ``mongodb`` alone means the URL in $MONGO_URI (its password stays out of argv)."""
    if url not in ("mongodb", "mongo"):
        return url
    if not os.environ.get(MONGO_ENV):
        raise _Usage(f"--store {url} takes the URL from ${MONGO_ENV}, which is not set")
    return os.environ[MONGO_ENV]


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
        raise _Usage(f"--runs-dir must be an absolute path in a Ray job (got {args.runs_dir!r}): the job's working "
                     "directory is a temporary copy, deleted with the job")
    store = args.store or ""
    if store.lower().startswith("sqlite:///") and not store[len("sqlite:///"):].startswith("/"):
        raise _Usage(f"--store {store!r} is relative; in a Ray job use an absolute path (sqlite:////abs/dir)")


class _Usage(KatorayError):
    """A command-line option that cannot work as given."""


# -- main ----------------------------------------------------------------------------------------------
def console_main(*, job: bool = False) -> int:
    """The ``katoray`` command (and ``scripts/train.py``): ``main()``, then Ray's shutdown here
    rather than at interpreter exit, where a Ctrl-C would end in Ray's traceback."""
    return _stop_ray(main(job=job))


def _stop_ray(status: int) -> int:
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return status
    try:
        ray.shutdown()
    except KeyboardInterrupt:
        _fail("interrupted while Ray shut down; the command had already finished and saved what it did")
        return EXIT_INTERRUPTED
    return status


def main(argv: Sequence[str] | None = None, *, job: bool = False) -> int:
    """Run the command line; returns the exit status. ``job``: ``scripts/train.py`` in a Ray job."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")   # no "PyTorch was not found": none is needed
    if threading.current_thread() is not threading.main_thread():
        return _run(argv, job)              # only the main thread may handle signals
    previous = signal.signal(signal.SIGTERM, _terminated)   # `ray job stop`, `kill`: end like Ctrl-C, resumable
    try:
        return _run(argv, job)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: Sequence[str] | None, job: bool) -> int:
    if job:
        parser = argparse.ArgumentParser(prog="scripts/train.py", formatter_class=_Help,
                                         description="katoray train, as a Ray job entry point (joins the job's "
                                                     "cluster; every path it writes is absolute).")
        add_train_arguments(parser, job=True)
        argv = list(sys.argv[1:] if argv is None else argv)
        commands = {None: lambda a: train_command(a, job=True)}
    else:
        parser = build_parser()
        commands = {"train": train_command, "resume": resume_command, "runs": runs_command, "serve": serve_command}
    args = parser.parse_args(argv)
    try:
        return commands[getattr(args, "command", None)](args)
    except KatorayError as err:
        _fail(str(err))
        return EXIT_ERROR
    except BrokenPipeError:   # `katoray runs list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit's flush
        return EXIT_BROKEN_PIPE


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
