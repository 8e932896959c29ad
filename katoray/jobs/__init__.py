"""Durable training runs: manifests, checkpoints, start and resume, and the notebook's run tools.

Importing this package does not import Ray; training does when it starts.
"""
from katoray.jobs.checkpoint import Checkpoint
from katoray.jobs.manifest import RunNotFoundError, TrainingManifest
from katoray.jobs.run import TrainConfig, resume_run, start_run
from katoray.jobs.runs import (RunBusyError, TrainingRunNodes, create_training_run_nodes, delete_training_run,
                               fingerprint, list_all_training_runs, load_latest_manifest, load_manifest)

__all__ = ["Checkpoint", "RunBusyError", "RunNotFoundError", "TrainConfig", "TrainingManifest", "TrainingRunNodes",
           "create_training_run_nodes", "delete_training_run", "fingerprint", "list_all_training_runs",
           "load_latest_manifest", "load_manifest", "resume_run", "start_run"]
