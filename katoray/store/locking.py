"""A readers-writer lock: what lets a prediction read one state of a knowledge base while other
threads learn, delete or clear.

A prediction reads a KB many times (candidates, then their records, then symbol statistics and
totals); a write landing between two of those reads made it see a pattern in one read and miss
it in the next (``KeyError`` on SQLite, ``TypeError`` over memory). Writers hold the lock
alone; readers share it, so predictions on one node still run side by side.

Readers re-enter freely (a prediction calls store methods that take the read side again), and
a thread holding the write side may also read. Taking the write side while holding only the
read side would wait forever: it raises ``RuntimeError`` instead.

Fairness is phase by phase, so neither side starves the other: a waiting writer stops new
readers from entering (those already reading finish first), and when a writer leaves, every
reader that was waiting for it enters before the next writer does.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class ReadWriteLock:
    """Many readers or one writer (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0                  # threads holding the read side (each counted once)
        self._writer: int | None = None    # thread id holding the write side
        self._write_depth = 0
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._releases = 0                 # writes ended so far: a reader waiting since before one may enter
        self._admitted = 0                 # readers let in by the last write's end that have not entered yet
        self._local = threading.local()    # .depth: this thread's read re-entries

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the read side for the block (re-entrant; also inside this thread's write)."""
        depth = getattr(self._local, "depth", 0)
        outermost = depth == 0 and self._writer != threading.get_ident()
        if outermost:
            self._enter_reader()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if outermost:
                with self._cond:
                    self._readers -= 1
                    if not self._readers:
                        self._cond.notify_all()

    def _enter_reader(self) -> None:
        with self._cond:
            releases = self._releases
            self._readers_waiting += 1
            try:
                while self._writer is not None or (self._writers_waiting and self._releases == releases):
                    self._cond.wait()
            finally:
                self._readers_waiting -= 1
                if self._releases != releases and self._admitted:
                    self._admitted -= 1
                    self._cond.notify_all()
            self._readers += 1

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write side for the block (re-entrant for the thread that holds it)."""
        me = threading.get_ident()
        if self._writer != me:
            if getattr(self._local, "depth", 0):
                raise RuntimeError("a thread reading a knowledge base tried to write it: finish the read first")
            with self._cond:
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers or self._admitted:
                        self._cond.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer = me
        self._write_depth += 1
        try:
            yield
        finally:
            self._write_depth -= 1
            if not self._write_depth:
                with self._cond:
                    self._writer = None
                    self._releases += 1
                    self._admitted = self._readers_waiting
                    self._cond.notify_all()
