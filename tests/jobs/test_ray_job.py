"""``ray job submit ... -- python scripts/train.py``: a training run submitted to a Ray cluster.

The cluster is a real head started with ``ray start --head`` (dashboard included: Jobs need it)
in its own temp dir, on free ports. It is stopped by ending exactly its processes (those whose
command line names its temp dir, and everything they started): ``ray stop`` would end every Ray
on the machine, this test session's own included.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from katoray.jobs import TrainingManifest, fingerprint
from tests.jobs import REPO, alive, cli_env, cmdline, descendants, reference_fingerprint

pytestmark = pytest.mark.ray
JOB_TIMEOUT_S = 300


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def ray_head():
    """A Ray head of its own: (dashboard URL, environment for its CLI). Ended afterwards."""
    temp_dir = Path(f"/tmp/krj-{uuid.uuid4().hex[:8]}")          # short: Ray's socket paths must stay < 108 bytes
    gcs, dashboard, client, agent = free_ports(4)
    env = cli_env(PATH=f"{Path(os.sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                  TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    start = subprocess.run(["ray", "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
                            "--num-cpus=2", "--disable-usage-stats", "--include-dashboard=true",
                            f"--temp-dir={temp_dir}", f"--ray-client-server-port={client}",
                            f"--dashboard-agent-listen-port={agent}"], env=env, capture_output=True, text=True,
                           timeout=120)
    try:
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_head(temp_dir, gcs)


def stop_head(temp_dir: Path, gcs_port: int) -> None:
    """End the head's processes (and what they started: raylet workers, the job's driver): those
    naming its temp dir or its GCS address (the Ray client server names only the latter)."""
    mine = {os.getpid(), os.getppid()}
    ours = re.compile(rf"{re.escape(str(temp_dir))}|:{gcs_port}\b")
    roots = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in mine and ours.search(cmdline(int(p)))]
    victims = set(roots)
    for pid in roots:
        victims.update(descendants(pid))
    for sig, wait_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):   # its GCS would wait 16 s on SIGTERM
        for pid in victims:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(alive(pid) for pid in victims):
            time.sleep(0.1)
    assert not any(alive(pid) for pid in victims), "the test's Ray head did not stop"
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_job_trains_a_run_on_the_cluster(ray_session, ray_head, tmp_path, tmp_path_factory):
    dashboard, env = ray_head
    runs_dir = tmp_path / "runs"
    submit = subprocess.run(
        ["ray", "job", "submit", "--address", dashboard, "--working-dir", str(REPO), "--",
         "python", "scripts/train.py", "--runs-dir", str(runs_dir), "--max-samples", "5", "--workers", "1",
         "--run-id", "job-run", "--json"], env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    logs = submit.stdout + submit.stderr
    assert submit.returncode == 0 and "Job 'raysubmit_" in logs and "succeeded" in logs, logs[-4000:]
    stats = json.loads(next(line for line in submit.stdout.splitlines() if line.startswith('{"attempts"')))
    assert stats["run_id"] == "job-run" and stats["samples_processed"] == 5 and stats["num_workers"] == 1

    manifest = TrainingManifest.load(runs_dir / "job-run")
    assert manifest.status == "finished" and manifest.documents == 5
    assert manifest.config["address"] == "auto" and manifest.config["runs_dir"] == str(runs_dir)
    assert manifest.config["store"] == f"sqlite:///{runs_dir}/job-run/kb"     # absolute: not in the job's copy
    assert manifest.attempts[0]["pid"] != os.getpid()
    expected = reference_fingerprint(tmp_path_factory, dataset="pydoc", max_samples=5)
    assert fingerprint("job-run", runs_dir) == expected
