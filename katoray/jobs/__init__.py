"""Durable training runs: start and resume, manifests, checkpoints, and the run registry.

Importing this package does not import Ray; training does when it starts. ``TrainConfig`` is
:mod:`katoray.config`'s, re-exported here beside the functions that take it.
"""
from katoray.config import TrainConfig
from katoray.jobs.checkpoint import Checkpoint
from katoray.jobs.manifest import RunNotFoundError, TrainingManifest
from katoray.jobs.run import resume_run, start_run
from katoray.jobs.runs import (RunBusyError, delete_run, fingerprint, latest_manifest, list_runs, load_manifest)

__all__ = ["Checkpoint", "RunBusyError", "RunNotFoundError", "TrainConfig", "TrainingManifest", "delete_run",
           "fingerprint", "latest_manifest", "list_runs", "load_manifest", "resume_run", "start_run"]
