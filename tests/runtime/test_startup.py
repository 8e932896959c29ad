"""A run's start-up: Ray comes up while the tokenizer loads, and the read tasks' process starts early."""
from __future__ import annotations

import os
import re
import socket
import threading
import time

import pytest

from katoray.config import TrainConfig
from katoray.errors import ConfigError
from katoray.runspec import RunSpec
from katoray.runtime.driver import check_reachable, ray_up_while
from katoray.runtime.source import start_reader_process
from tests.jobs import katoray
from tests.net import free_port


def spec(tmp_path) -> RunSpec:
    return RunSpec.from_config(TrainConfig(store=f"sqlite:///{tmp_path}", runs_dir=str(tmp_path)).for_run("startup"))


@pytest.mark.ray
def test_the_load_runs_in_another_thread_and_its_value_comes_back(ray_session, tmp_path):
    import ray

    seen = []
    assert ray_up_while(spec(tmp_path), None, lambda: seen.append(threading.current_thread()) or "tokenizer") == \
        "tokenizer"
    assert seen and seen[0] is not threading.main_thread() and ray.is_initialized()


@pytest.mark.ray
def test_the_loads_error_is_raised_as_itself_once_ray_is_up(ray_session, tmp_path):
    error = ConfigError("folder 'x' does not hold a tokenizer")

    def load():
        raise error

    with pytest.raises(ConfigError) as raised:
        ray_up_while(spec(tmp_path), None, load)
    assert raised.value is error


def test_an_address_where_nothing_answers_fails_at_once_naming_it():
    port = free_port()
    started = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(ConfigError, match=f"cannot join the Ray cluster at '{re.escape(address)}' "
                                              "\\(ConnectionRefusedError"):
            check_reachable(address)
    assert time.monotonic() - started < 5   # ray.init would retry for minutes
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}")   # something answers: Ray's to judge
    for address in ("auto", "local", "http://127.0.0.1:8265"):
        check_reachable(address)   # Ray resolves these itself


def test_train_with_an_unreachable_address_says_so_and_creates_nothing(tmp_path, kjv_books_path, gpt2_dir):
    address = f"127.0.0.1:{free_port()}"
    result = katoray("train", "--address", address, "--data", str(kjv_books_path), "--tokenizer", str(gpt2_dir),
                     "--runs-dir", str(tmp_path / "runs"), "--store", f"sqlite:///{tmp_path / 'kb'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"katoray: error: cannot join the Ray cluster at '{address}'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.ray
def test_the_reader_process_starts_with_the_datasource_loaded(ray_session):
    import ray

    pid = ray.get(start_reader_process(), timeout=120)
    assert pid != os.getpid()   # a Ray worker, which Ray keeps for the run's read tasks
