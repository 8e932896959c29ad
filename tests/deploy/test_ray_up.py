"""``ray up`` for real: cluster-local.yaml brought up over SSH to this machine, a training job
submitted to it with ``ray job submit ... scripts/train.py``, the run checked, ``ray down``.

Slow (a venv is made and katoray installed in it by the config's own setup commands) and it
changes the machine (Debian packages, a user), so it runs only with ``KATORAY_RAY_UP=1`` (as
``.ci/run`` does, as root):

- OpenSSH's server, rsync (``ray up`` copies the checkout with it) and netcat (the SSH server
  listens on a free port; Ray's SSH has no port option, so ``ssh_proxy_command`` connects) are
  installed from the Debian packages if missing;
- the cluster runs as its own unprivileged user (``katoray-up``): ``ray stop``, which the head's
  start commands and ``ray down`` run, ends every Ray process its user may signal on a machine,
  and other Ray instances here (this test session's, anyone's) must survive it;
- a key made by the test, an ``sshd`` of the test's own (its config, host key and port) that
  takes only that key for that user; the test ends it, by its pid.

The head's Ray ports are free ports chosen here and its session lives in the test's folder
(another Ray may hold 6379 or 8265 on a shared machine). The venv the setup commands make gets
this environment's packages through a ``.pth`` file first (and a ``ray`` command that runs the
venv's Python), so ``pip install -e ~/katoray`` installs katoray itself without downloading Ray
again; everything else is the config's own commands.
"""
from __future__ import annotations

import copy
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import yaml

from katoray.jobs import TrainConfig, fingerprint, start_run
from tests.conftest import REPO, SHARED
from tests.net import free_port

pytestmark = [pytest.mark.rayup, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("KATORAY_RAY_UP") != "1",
                                 reason="brings a Ray cluster up over SSH (minutes; root, Debian packages, a user): "
                                        "KATORAY_RAY_UP=1 runs it, as .ci/run does")]

USER = "katoray-up"
PACKAGES = {"openssh-server": "/usr/sbin/sshd", "rsync": "rsync", "netcat-openbsd": "nc"}
CORPUS_BOOKS = ("Ruth", "Jonah", "Jude")
TIMEOUT_S = 900


def run(*args: str, timeout: float = TIMEOUT_S, **kwargs) -> subprocess.CompletedProcess:
    return succeeded(subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs))


def succeeded(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    command = " ".join(done.args)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def submit(*args: str, env: dict, ray_temp: Path, wait_s: float = 240) -> subprocess.CompletedProcess:
    """``ray job submit ARGS``, again while the head's job agent is still starting (``ray up``
    returns once Ray is up; the dashboard agent registers a few seconds later, minutes when the
    suite beside this test keeps both cores busy, and until then Ray answers "No available agent
    ... try again later"). If it never comes, the failure shows the end of the head's agent logs
    (``ray_temp``: the head's Ray temp folder)."""
    deadline = time.monotonic() + wait_s
    while True:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        if done.returncode == 0 or "No available agent" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    if done.returncode != 0 and "No available agent" in done.stderr:
        logs = sorted(ray_temp.glob("session_*/logs/dashboard_agent.*"))
        done.stderr += "".join(f"\n--- {log} ---\n{log.read_text(errors='replace')[-600:]}" for log in logs)
    return succeeded(done)


# -- the machine ----------------------------------------------------------------------------------
def ensure_packages() -> None:
    """OpenSSH server, rsync and netcat from the Debian packages (idempotent)."""
    missing = [pkg for pkg, exe in PACKAGES.items() if shutil.which(exe) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.fail(f"the Debian packages {missing} are missing and only root can install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env,
                      capture_output=True, timeout=TIMEOUT_S).returncode != 0:
        run("apt-get", "update", env=env)          # package lists missing or stale: then again
        run("apt-get", "install", "-y", "--no-install-recommends", *missing, env=env)


def ensure_user() -> pwd.struct_passwd:
    """The cluster's user; no password, but not locked either (sshd refuses locked accounts)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        run("useradd", "--create-home", "--shell", "/bin/bash", USER)
    run("usermod", "--password", "*", USER)
    return pwd.getpwnam(USER)


def own(path: Path, user: pwd.struct_passwd, mode: int) -> None:
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


class Sshd:
    """An OpenSSH server of the test's own on 127.0.0.1:<free port>, taking ``key`` for ``user``."""

    def __init__(self, folder: Path, user: pwd.struct_passwd, public_key: str) -> None:
        ssh_dir = Path(user.pw_dir) / ".ssh"
        ssh_dir.mkdir(exist_ok=True)
        own(ssh_dir, user, 0o700)
        (ssh_dir / "authorized_keys").write_text(public_key)
        own(ssh_dir / "authorized_keys", user, 0o600)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key"))
        self.port = free_port()
        config = folder / "sshd_config"
        config.write_text(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
                          f"PidFile {folder / 'sshd.pid'}\nAllowUsers {USER}\nPubkeyAuthentication yes\n"
                          "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                          "AuthorizedKeysFile .ssh/authorized_keys\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # its privilege-separation directory
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=open(folder / "sshd.log", "w"))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, (folder / "sshd.log").read_text()
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


# -- the cluster config -----------------------------------------------------------------------------
def cluster_config(folder: Path, key: Path, sshd: Sshd, dashboard: int) -> Path:
    """cluster-local.yaml for this machine: the head at 127.0.0.1 through the test's sshd, no
    workers (each would be this machine again), free ports for the head's Ray."""
    config = copy.deepcopy(yaml.safe_load((REPO / "cluster-local.yaml").read_text()))
    config["cluster_name"] = f"katoray-ci-{os.getpid()}"
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": USER, "ssh_private_key": str(key),
                      "ssh_proxy_command": f"nc 127.0.0.1 {sshd.port}"}
    # This environment's packages for the venv, and a `ray` that runs the venv's own Python.
    ci = folder / "ci"
    ci.mkdir()
    (ci / "katoray-ci.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (ci / "ray").write_text('#!/bin/sh\nexec "$HOME/venv/bin/python" -c '
                            '"import sys; from ray.scripts.scripts import main; sys.argv[0] = \'ray\'; main()" "$@"\n')
    (ci / "ray").chmod(0o755)
    config["file_mounts"] = {"~/katoray": f"{REPO}/", "~/ci": f"{ci}/"}
    venv, *install = config["setup_commands"]
    config["setup_commands"] = [venv, "cp ~/ci/katoray-ci.pth ~/venv/lib/python3.11/site-packages/",
                                "cp ~/ci/ray ~/venv/bin/ray", *install]
    # Free ports for everything with a fixed default: another Ray on this machine (the suite runs
    # beside this test) may hold 6379, 8265, 10001 or the job agent's 52365 (then the head's agent
    # cannot listen, and every job submission answers "No available agent").
    gcs, client, agent = free_port(), free_port(), free_port()
    config["head_start_ray_commands"] = [
        command.replace("--port=6379", f"--port={gcs} --dashboard-port={dashboard} --ray-client-server-port={client} "
                                       f"--dashboard-agent-listen-port={agent} --num-cpus=4 --temp-dir={folder / 'ray'}")
        for command in config["head_start_ray_commands"]]
    assert any(f"--port={gcs}" in c for c in config["head_start_ray_commands"])
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def corpus(folder: Path) -> Path:
    import gzip

    with gzip.open(SHARED / "data" / "kjv" / "kjv_books.jsonl.gz", "rt", encoding="utf-8") as lines:
        books = [b for b in map(json.loads, lines) if b["abbrev"] in CORPUS_BOOKS]
    path = folder / "books.jsonl"
    path.write_text("".join(json.dumps({"title": b["title"], "text": b["text"]}) + "\n" for b in books))
    return path


TRAIN = ("--chunk-sizes", "4,3,3,3", "--workers", "1", "--shards", "2", "--batch-size", "1")


@pytest.fixture
def folder():
    """A folder the cluster's user can read and write (pytest's own are private to root)."""
    path = Path(f"/tmp/katoray-ray-up-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.ray
def test_ray_up_trains_a_job_and_ray_down(ray_session, folder, tmp_path):
    ensure_packages()
    user = ensure_user()
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "id_ed25519"))
    sshd = Sshd(folder, user, (folder / "id_ed25519.pub").read_text())
    data, runs_dir = corpus(folder), folder / "runs"
    for owned in (runs_dir, folder / "ray"):
        owned.mkdir()
        own(owned, user, 0o755)
    dashboard = free_port()
    config = cluster_config(folder, folder / "id_ed25519", sshd, dashboard)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env.update(RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    try:
        up = run(ray_cli, "up", "-y", "--no-config-cache", str(config), env=env)
        assert "Ray runtime started" in up.stdout + up.stderr or "ray start" in up.stdout + up.stderr
        job = submit(ray_cli, "job", "submit", "--address", f"http://127.0.0.1:{dashboard}", "--working-dir", str(REPO),
                     "--", "python", "scripts/train.py", "--data", str(data), "--tokenizer",
                     str(SHARED / "tokenizers" / "gpt2"), "--runs-dir", str(runs_dir), "--run-id", "on-ray-up", *TRAIN,
                     "--json", env=env, ray_temp=folder / "ray")
        assert "succeeded" in job.stdout.lower(), job.stdout[-3000:]
        stats = json.loads(next(line for line in reversed(job.stdout.splitlines()) if line.startswith("{")))
        assert stats["status"] == "finished" and stats["node0_shards"] == 2
    finally:
        down = subprocess.run([ray_cli, "down", "-y", str(config)], capture_output=True, text=True, env=env,
                              timeout=TIMEOUT_S)
        sshd.stop()
    assert down.returncode == 0, down.stderr[-3000:]
    here = tmp_path / "here"
    start_run(TrainConfig(data=str(data), tokenizer=str(SHARED / "tokenizers" / "gpt2"), chunk_sizes=(4, 3, 3, 3),
                          runs_dir=str(here), run_id="here", workers=1, batch_size=1, verbose=False))
    assert fingerprint("on-ray-up", runs_dir) == fingerprint("here", here)
