"""The ``katoray`` command line, thin over the library: one module per command group.

    katoray train                                   # 4 levels of chunk 8 on Python's own docs, ./runs/<run_id>/
    katoray train --data books/ --tokenizer gpt2 --chunk-sizes 8,8,8,8 --workers 4 --json
    katoray resume RUN_ID                           # after a crash, Ctrl-C or a lost machine
    katoray runs list | show RUN_ID | fingerprint RUN_ID | delete RUN_ID [--yes]
    katoray analyze RUN_ID --out report/ [--compare RUN_ID2]   # report.html and PNGs
    katoray export RUN_ID --out DIR                 # one Parquet file per level
    katoray import DIR --run-id NEW [--store URL]   # an export as a new run, in any store
    katoray cleanup RUN_ID --threshold 2 [--dry-run]
    katoray serve --port 8000 --store sqlite:///kb  # KATO's HTTP API over the built-in engine
    katoray serve --run RUN_ID                      # ... over a trained run's knowledge bases
    katoray predict RUN_ID "And God said" | generate RUN_ID --prompt TEXT | eval RUN_ID --data held-out/

Exit status: 0 done; 2 a usage or input error (one line on stderr saying what and what to do);
130 interrupted (the run can be resumed). Training output goes to stdout (the run id first, the
statistics last; with ``--json`` the last line is one JSON object); progress goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, Sequence

from katoray.cli import analyze, runs, serve, train, use
from katoray.cli.common import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, Help, fail
from katoray.errors import KatorayError

COMMAND_GROUPS = (train, runs, analyze, use, serve)   # each adds its subcommands (``add_parsers``) with their handlers


def build_parser(prog: str = "katoray") -> argparse.ArgumentParser:
    from katoray.version import __version__

    parser = argparse.ArgumentParser(prog=prog, formatter_class=Help, description=_doc_head())
    parser.add_argument("--version", action="version", version=f"katoray {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(commands)
    return parser


def _doc_head() -> str:
    return __doc__.split("\n\n", 2)[1] if __doc__ else ""


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
        if status in (EXIT_INTERRUPTED, EXIT_TERMINATED):   # the command itself was stopped: its line says how
            fail("interrupted again while Ray shut down; the run had already stopped and recorded it (see above)")
        else:
            fail("interrupted while Ray shut down; the command had already finished and saved what it did")
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
        parser = train.job_parser()
        argv = list(sys.argv[1:] if argv is None else argv)
    else:
        parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KatorayError as err:
        fail(str(err))
        return EXIT_ERROR
    except BrokenPipeError:   # `katoray runs list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit's flush
        return EXIT_BROKEN_PIPE
    except OSError as err:    # a file the command writes or reads: one line, not a traceback
        fail(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
        return EXIT_ERROR


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
