"""What every ``katoray`` command shares: help format, argument types, output, exit codes."""
from __future__ import annotations

import argparse
import os
import sys

from katoray.errors import KatorayError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143            # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141          # 128 + SIGPIPE, as a shell reports a command whose reader left
MONGO_ENV = "MONGO_URI"     # a MongoDB URL with credentials, kept out of shell history and manifests


class Help(argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help, unless the help already says it in words;
    descriptions keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def add_command(commands, name: str, help: str, description: str, handler) -> argparse.ArgumentParser:
    """A subcommand whose ``args.handler(args)`` runs it."""
    parser = commands.add_parser(name, formatter_class=Help, help=help, description=description)
    parser.set_defaults(handler=handler)
    return parser


# -- argument types -----------------------------------------------------------------------------------
def count(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def positive(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def sizes(text: str) -> tuple[int, ...]:
    values = _ints(text, "8,8,8,8")
    if any(size < 2 for size in values):
        raise argparse.ArgumentTypeError(f"every chunk size must be >= 2 (KATO learns nothing shorter), got {text!r}")
    return values


def shard_counts(text: str) -> int | tuple[int, ...]:
    """``--shards``: one count for every level (``4``), or one per level (``4,2,1,1``)."""
    values = _ints(text, "4,2,1,1")
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"every shard count must be >= 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def _ints(text: str, example: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as {example}, got {text!r}") from None


# -- output -------------------------------------------------------------------------------------------
def say(text: str) -> None:
    print(text, flush=True)


def fail(text: str) -> None:
    print(f"katoray: error: {' '.join(text.split())}", file=sys.stderr, flush=True)


class Usage(KatorayError):
    """A command-line option that cannot work as given."""


def store_arg(url: str | None) -> str | None:
    """``--store``; ``mongodb`` alone means the URL in $MONGO_URI (its password stays out of argv)."""
    if url not in ("mongodb", "mongo"):
        return url
    if not os.environ.get(MONGO_ENV):
        raise Usage(f"--store {url} takes the URL from ${MONGO_ENV}, which is not set")
    return os.environ[MONGO_ENV]


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of a command about one trained run: its id, its runs folder, a MongoDB URL."""
    from katoray.config import DEFAULT_RUNS_DIR

    parser.add_argument("run_id", metavar="RUN_ID", help="id of a trained run (its folder in --runs-dir)")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, metavar="DIR", help="folder of run folders")
    parser.add_argument("--mongo-uri", default=os.environ.get(MONGO_ENV), metavar="URL",
                        help=f"MongoDB server with credentials, for MongoDB runs (default: ${MONGO_ENV})")
