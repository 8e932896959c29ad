"""``katoray analyze | export | import | cleanup``: a finished (or running) run's knowledge bases."""
from __future__ import annotations

import argparse
import os

from katoray.cli.common import MONGO_ENV, add_command, positive, run_arguments, say, store_arg
from katoray.config import DEFAULT_RUNS_DIR


def add_parsers(commands) -> None:
    analyze = add_command(commands, "analyze", "write an HTML report of a run (or two, compared)",
                          "Per level: patterns, total frequency, frequency histogram, rank-frequency with its Zipf "
                          "exponent, pattern lengths, reuse rate, the most frequent patterns as text and size on "
                          "disk; DIR/report.html and its PNGs.", analyze_command)
    run_arguments(analyze)
    analyze.add_argument("--out", required=True, metavar="DIR", help="folder for report.html and the PNGs")
    analyze.add_argument("--compare", metavar="RUN_ID2", help="a second run, shown side by side")
    analyze.add_argument("--top", type=positive, default=10, metavar="N", help="most frequent patterns shown per level")

    export = add_command(commands, "export", "write a run's levels as Parquet files",
                         "One Parquet file per level (name, pattern_data, length, frequency, emotives, metadata), "
                         "for pandas, polars or DuckDB, and export.json for katoray import.", export_command)
    run_arguments(export)
    export.add_argument("--out", required=True, metavar="DIR", help="folder for the Parquet files")

    load = add_command(commands, "import", "load an export into any store as a new run",
                       "Load a folder written by katoray export as a new run (same fingerprint as the source); "
                       "also how a run moves from SQLite to MongoDB.", import_command)
    load.add_argument("src", metavar="DIR", help="a folder written by katoray export")
    load.add_argument("--run-id", required=True, metavar="NEW", help="the new run's id")
    load.add_argument("--store", metavar="URL", help="knowledge-base URL (sqlite:///dir, mongodb://host:port/, or "
                      f"'mongodb' for ${MONGO_ENV}; default: sqlite in the new run's folder)")
    load.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, metavar="DIR", help="folder of run folders")

    cleanup = add_command(commands, "cleanup", "delete rare patterns, keeping those a parent still uses",
                          "Delete patterns with frequency < N at every level, top-down; a pattern stays while a "
                          "surviving pattern of the level above uses it. Says per level what goes and what stays.",
                          cleanup_command)
    run_arguments(cleanup)
    cleanup.add_argument("--threshold", required=True, type=positive, metavar="N",
                         help="delete patterns whose frequency is below N")
    cleanup.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")


def analyze_command(args: argparse.Namespace) -> int:
    from katoray.analysis.report import write_report
    from katoray.analysis.summary import summarize_run
    from katoray.jobs import load_manifest

    runs = [summarize_run(load_manifest(run_id, args.runs_dir), args.top, args.mongo_uri)
            for run_id in filter(None, (args.run_id, args.compare))]
    for run in runs:
        for level in run.levels:
            zipf = f"Zipf s {level.zipf.exponent:.2f}" if level.zipf else "Zipf s –"
            say(f"{run.run_id} {level.node}: {level.patterns:,} patterns, total frequency {level.total_frequency:,}, "
                f"{zipf}")
        for note in run.notes:
            say(f"{run.run_id}: note: {note}")
    say(f"report: {write_report(runs, args.out)}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from katoray.jobs.parquet import export_run

    export = export_run(args.run_id, args.out, args.runs_dir, args.mongo_uri)
    for level in export["levels"]:
        say(f"{level['node']}: {level['patterns']:,} patterns -> {os.path.join(args.out, level['file'])}")
    say(f"export of run {export['run_id']}: {os.path.join(args.out, 'export.json')}")
    return 0


def import_command(args: argparse.Namespace) -> int:
    from katoray.jobs.parquet import import_run

    manifest = import_run(args.src, args.run_id, store_arg(args.store), args.runs_dir)
    source = manifest.attempts[-1]["source_run_id"]
    say(f"imported run {source} as {manifest.run_id} into {manifest.store} ({len(manifest.nodes)} levels, "
        f"fingerprints checked)")
    say(f"manifest: {manifest.run_dir / 'manifest.json'}")
    return 0


def cleanup_command(args: argparse.Namespace) -> int:
    from katoray.analysis.cleanup import cleanup_levels
    from katoray.jobs import load_manifest

    stores = load_manifest(args.run_id, args.runs_dir).open_stores(args.mongo_uri)
    try:
        plans = cleanup_levels(list(stores.values()), list(stores), args.threshold, dry_run=args.dry_run)
    finally:
        for kb in stores.values():
            kb.close()
    for plan in plans:
        say(plan.describe(args.threshold, args.dry_run))
    total = sum(plan.deleted for plan in plans)
    say(f"{'would delete' if args.dry_run else 'deleted'} {total:,} patterns in all"
        + (" (dry run: nothing was deleted)" if args.dry_run else ""))
    return 0
