"""The frequency-weighted sample every backend gives for ``KnowledgeBase.sample_by_frequency``.

Shared code, per-backend data: each store streams its (name, frequency) pairs
(``iter_frequencies``: a SQL range read, a MongoDB cursor, numpy columns) and ``weighted_sample``
draws from them the same way for all, so a seed gives the same sample on every backend.
"""
from __future__ import annotations

import hashlib
from itertools import islice
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from katoray.store.base import KnowledgeBase, PatternRecord


def sample_records(kb: KnowledgeBase, num_samples: int, seed: int = 0) -> list[PatternRecord]:
    """``kb.sample_by_frequency``: the records of ``weighted_sample(kb.iter_frequencies(), ...)``
    in draw order (a pattern deleted while sampling is left out)."""
    names = weighted_sample(kb.iter_frequencies(), num_samples, seed)
    found = kb.get_patterns(names)
    return [found[name] for name in names if name in found]


def weighted_sample(frequencies: Iterable[tuple[str, int]], num_samples: int, seed: int = 0) -> list[str]:
    """Names of ``num_samples`` patterns drawn without replacement, each draw with probability
    proportional to frequency, in draw order; patterns of frequency 0 are never drawn.

    Efraimidis and Spirakis' one-pass method: pattern i gets the key ``log(u_i) / frequency_i``
    and the draws are the ``num_samples`` largest keys, largest first (the same distribution as
    drawing one at a time and removing it). ``u_i`` is uniform in (0, 1) and comes from the name
    and the seed, not from a generator's stream: the name's first 64 bits (a pattern's name is a
    sha1; any other name is hashed with blake2b first) go through a seeded 64-bit mixer, MurmurHash3's
    finaliser twice around two keys derived from ``seed``, so different names (and seeds) give
    practically independent numbers. The sample therefore depends on the patterns and the seed
    only, never on the order a backend streams them in. Pages of ``SAMPLE_PAGE`` pairs are keyed
    with numpy: O(n) time, O(k + page) memory.
    """
    import numpy as np   # (here: a store that never samples never imports numpy)

    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
        raise ValueError(f"num_samples must be an int >= 0, got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    keys_of_seed = np.frombuffer(hashlib.blake2b(str(seed).encode(), digest_size=16).digest(), ">u8").astype(np.uint64)
    best_keys, best_names = np.empty(0), np.empty(0, dtype=object)
    for names, counts in _pages_of(frequencies):
        mixed = _fmix64(_fmix64(_name_bits(names) ^ keys_of_seed[0]) ^ keys_of_seed[1])
        uniform = (mixed >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 + 2.0 ** -54   # in (0, 1)
        with np.errstate(divide="ignore"):
            keys = np.where(counts > 0, np.log(uniform) / counts, -np.inf)
        keys = np.concatenate([best_keys, keys])
        names = np.concatenate([best_names, np.array(names, dtype=object)])
        order = _top(keys, names, num_samples)
        best_keys, best_names = keys[order], names[order]
    return list(best_names)


SAMPLE_PAGE = 50_000   # (name, frequency) pairs keyed at once by weighted_sample


def _pages_of(pairs: Iterable[tuple[str, int]]):
    """(names, frequencies as float64) in pages of ``SAMPLE_PAGE``."""
    import numpy as np

    pairs = iter(pairs)
    while page := list(islice(pairs, SAMPLE_PAGE)):
        names, counts = zip(*page)
        yield list(names), np.asarray(counts, dtype=np.float64)


def _name_bits(names: list[str]):
    """The first 64 bits of each sha1 name (uint64); a blake2b of the name for any other name."""
    import numpy as np

    try:
        if set(map(len, names)) == {40}:
            return np.frombuffer(bytes.fromhex("".join([name[:16] for name in names])), ">u8").astype(np.uint64)
    except ValueError:   # not hex: name by name below
        pass
    return np.array([int(name[:16], 16) if len(name) == 40 and _is_hex(name) else
                     int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
                     for name in names], dtype=np.uint64)


def _fmix64(z):
    """MurmurHash3's 64-bit finaliser (a bijection whose every output bit depends on every input bit)."""
    import numpy as np

    z = z ^ (z >> np.uint64(33))
    z = z * np.uint64(0xFF51AFD7ED558CCD)
    z = z ^ (z >> np.uint64(33))
    z = z * np.uint64(0xC4CEB9FE1A85EC53)
    return z ^ (z >> np.uint64(33))


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
        return True
    except ValueError:
        return False


def _top(keys, names, k: int):
    """Positions of the ``k`` largest finite keys, largest first (ties: the smaller name first)."""
    import numpy as np

    finite = np.flatnonzero(keys > -np.inf)
    if k == 0:
        return []
    if len(finite) > k:
        cut = np.partition(keys[finite], len(finite) - k)[len(finite) - k]
        finite = finite[keys[finite] >= cut]   # ties at the cut stay in: sorted out below
    return sorted(finite, key=lambda i: (-keys[i], names[i]))[:k]
