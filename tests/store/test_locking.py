"""The readers-writer lock behind every store's ``reading()``."""
from __future__ import annotations

import threading
import time

import pytest

from katoray.store.locking import ReadWriteLock


def _started(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_readers_share_and_a_writer_waits_for_them():
    lock, events = ReadWriteLock(), []
    with lock.reading():
        with lock.reading():   # re-entry by the same thread
            reader = _started(lambda: _hold(lock.reading, events, "read"))
            reader.join(2)
            assert events == ["read"]   # another reader got in beside us
            writer = _started(lambda: _hold(lock.writing, events, "write"))
            time.sleep(0.1)
            assert events == ["read"]   # the writer waits while we read
    writer.join(2)
    assert events == ["read", "write"]


def test_a_waiting_writer_goes_before_new_readers():
    lock, events = ReadWriteLock(), []
    holding = threading.Event()
    release = threading.Event()

    def long_read() -> None:
        with lock.reading():
            holding.set()
            release.wait(2)

    first = _started(long_read)
    holding.wait(2)
    writer = _started(lambda: _hold(lock.writing, events, "write"))
    time.sleep(0.05)
    late_reader = _started(lambda: _hold(lock.reading, events, "late read"))
    time.sleep(0.05)
    assert events == []
    release.set()
    for thread in (first, writer, late_reader):
        thread.join(2)
    assert events == ["write", "late read"]


def test_the_writer_may_read_and_write_again_but_a_reader_may_not_write():
    lock = ReadWriteLock()
    with lock.writing():
        with lock.reading(), lock.writing():
            pass
    with lock.reading():
        with pytest.raises(RuntimeError, match="finish the read first"):
            with lock.writing():
                pass
    with lock.writing():   # nothing was left held
        pass


def _hold(side, events: list, name: str) -> None:
    with side():
        events.append(name)


def test_a_stream_of_writes_does_not_starve_readers():
    lock, reads = ReadWriteLock(), []
    deadline = time.monotonic() + 0.5

    def write_forever() -> None:
        while time.monotonic() < deadline:
            with lock.writing():
                time.sleep(0.001)

    writers = [_started(write_forever) for _ in range(2)]
    reader = _started(lambda: [_hold(lock.reading, reads, "read") for _ in range(20)])
    reader.join(5)
    for writer in writers:
        writer.join(5)
    assert len(reads) == 20
