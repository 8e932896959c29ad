"""kato-lm's run-management names over katoray's run registry (:mod:`katoray.jobs.runs`).

    manifest = load_latest_manifest()                 # the newest run in ./runs
    runs = list_all_training_runs()                   # {run_id: summary}
    delete_training_run("baseline_8chunks")           # asks for DELETE on a terminal

``create_training_run_nodes`` (which raised ``TypeError`` in kato-lm: B1) is in
:mod:`katoray.compat.nodes`.
"""
from katoray.jobs.runs import delete_run as delete_training_run
from katoray.jobs.runs import latest_manifest as load_latest_manifest
from katoray.jobs.runs import list_runs as list_all_training_runs

__all__ = ["delete_training_run", "load_latest_manifest", "list_all_training_runs"]
