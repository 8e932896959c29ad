"""Small helpers shared across layers."""
from __future__ import annotations

import gc
import importlib
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence


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


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """A package's module ``__getattr__`` and ``__dir__`` (PEP 562), and the names they add:
    each name in ``modules`` (defining module -> its public names) is imported on first use.
    Importing one submodule then loads only what it needs: a node actor (its own process,
    started for every run) imports neither numpy, the text layer nor the driver unless it
    predicts (measured: importing ``katoray.runtime.node`` went from 0.15 to 0.03 CPU s)."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)   # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(where))

    return __getattr__, __dir__, list(where)
