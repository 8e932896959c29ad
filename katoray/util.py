"""Small helpers shared across layers."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around allocation-heavy, cycle-free hot paths.

    The map and the in-memory store allocate one small container per new pattern and create no
    reference cycles; refcounting frees everything, while the cyclic collector's repeated scans
    of the growing dicts cost 40-50% of their time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
