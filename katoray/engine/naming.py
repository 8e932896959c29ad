"""Pattern and vector names, exactly as KATO computes them.

A pattern's name is ``"PTRN|" + sha1(repr(events))`` where ``events`` is a list of lists of str and
``repr`` is Python's own (single quotes, ``", "`` separators, escapes as Python writes them). We are
in Python, so ``repr`` *is* the reference serialisation: no emulation needed. The stored name (in
knowledge bases and in predictions) is the bare 40-hex digest; the API returns it with the prefix.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

PATTERN_PREFIX = "PTRN|"
VECTOR_PREFIX = "VCTR|"

Events = Sequence[Sequence[str]]


def pattern_hash(events: Events) -> str:
    """Bare 40-hex sha1 of a pattern's events (the stored ``name``)."""
    # KATO hashes str(list_of_lists); tuples would repr differently, so normalise to lists.
    text = repr([list(event) for event in events])
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def pattern_name(events: Events) -> str:
    """``PTRN|<sha1>``: the name KATO's learn returns for these events.

    >>> pattern_name([["a"], ["b"]])
    'PTRN|76d7efca2e96cb5eeddf4e06ac96a0f424630135'
    """
    return PATTERN_PREFIX + pattern_hash(events)


def strip_prefix(name: str) -> str:
    """Bare hash of a pattern name given with or without ``PTRN|``."""
    return name[len(PATTERN_PREFIX):] if name.startswith(PATTERN_PREFIX) else name


def vector_name(vectors: Sequence[Sequence[float]]) -> str:
    """``VCTR|<sha1>`` of the element-wise sum of an observation's vectors (spec §2.2).

    KATO hashes numpy's ``str`` of the summed float array, e.g. ``[1. 1.]``.
    """
    import numpy as np  # local: the rest of the engine does not need numpy

    total = np.sum(np.asarray(vectors, dtype=float), axis=0)
    return VECTOR_PREFIX + hashlib.sha1(str(total).encode("utf-8")).hexdigest()
