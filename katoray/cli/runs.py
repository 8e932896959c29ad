"""``katoray runs list | show | fingerprint | delete``."""
from __future__ import annotations

import argparse
import json
import os

from katoray.cli.common import MONGO_ENV, Help, add_command
from katoray.config import DEFAULT_RUNS_DIR


def add_parsers(commands) -> None:
    runs = add_command(commands, "runs", "list, show, fingerprint or delete runs",
                       "Runs in a runs folder (their manifests and knowledge bases).", runs_command)
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("list", "one line per run, oldest first"), ("show", "a run's manifest (JSON)"),
                       ("fingerprint", "per level: patterns, total frequency, sha256 over (name, frequency); JSON"),
                       ("delete", "delete a run's knowledge bases and folder")):
        parser = actions.add_parser(name, formatter_class=Help, help=text, description=text[0].upper() + text[1:] + ".")
        if name != "list":
            parser.add_argument("run_id", metavar="RUN_ID", help="id of the run (its folder in --runs-dir)")
        parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, metavar="DIR", help="folder of run folders")
        if name in ("list", "fingerprint", "delete"):
            parser.add_argument("--mongo-uri", default=os.environ.get(MONGO_ENV), metavar="URL",
                                help=f"MongoDB server with credentials, for MongoDB runs (default: ${MONGO_ENV})")
        if name == "list":
            parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
        if name == "delete":
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed when stdin "
                                "is not a terminal)")


def runs_command(args: argparse.Namespace) -> int:
    from katoray.jobs import runs

    if args.action == "list":
        found = runs.list_runs(args.runs_dir, args.mongo_uri)
        print(json.dumps({str(k): v for k, v in found.items()}, sort_keys=True) if args.json else _runs_table(found))
    elif args.action == "show":
        manifest = runs.load_manifest(args.run_id, args.runs_dir)
        print(json.dumps({**manifest.to_dict(), "status": runs.current_status(manifest)}, indent=1))
    elif args.action == "fingerprint":
        print(json.dumps(runs.fingerprint(args.run_id, args.runs_dir, args.mongo_uri), sort_keys=True))
    else:
        done = runs.delete_run(args.run_id, args.runs_dir, args.mongo_uri, confirm=not args.yes)
        what = [done["run_dir"] or "", *done["files"], *(f"database {d}" for d in done["databases"])]
        print(f"{'deleted' if done['deleted'] else 'kept'} run {args.run_id}: {', '.join(w for w in what if w)}")
    return 0


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

