"""Tokenizing each distinct word once: a byte-level tokenizer's pieces, cached per word.

Running text repeats its words (the KJV's 994k GPT-2 tokens come from 29k distinct words), and a
byte-level BPE tokenizer (GPT-2's pre-tokenizer: ``ByteLevel(add_prefix_space=False,
use_regex=True)``, no normalizer) gives a text's pieces as the concatenation of its words'
pieces, where a *word* starts at every ``' '`` followed by a non-space character
(``'In the  beginning,'`` -> ``'In'``, ``' the '``, ``' beginning,'``). Why that is exact:

- the pre-tokenizer's regex (``'s|'t|...| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``)
  never matches across such a boundary: only a match's first character may be that space;
- the only look past a match is ``(?!\\S)``, which sees the boundary's space in the text and the
  end of the string in the word: both are "not \\S";
- BPE merges act inside one regex match, and the tokenizer's added tokens are required to hold no
  whitespace and to strip none (``word_splittable``), so none spans or absorbs a boundary.

Python's ``\\S`` (not ``str.isspace()``) is narrower than "not Unicode White_Space" (the regex
engine's), so a boundary found here is always one there too. ``tests/text/test_word_cache.py``
checks the result against the tokenizer itself for every code point of the BMP after a space,
and on random text.

Measured on the KJV paragraphs (``python scripts/benchmark.py tokenize``), GPT-2 pieces per CPU
second: about 1.5x the tokenizer's own rate with an empty cache, 3.4x once the words are known
(the built-in ``katoray-bytes``: 2.2x and 2.8x).
"""
from __future__ import annotations

import re
from itertools import chain
from typing import Any, Callable, Sequence

WORD_START = re.compile(r"(?= \S)")
# Cache size in estimated bytes: a word's characters plus ~150 bytes of dict slot, str and list
# headers. 32 MiB holds ~170k words of ordinary text; a full cache starts over empty.
MAX_CACHE_BYTES = 32 * 1024 * 1024
ENTRY_OVERHEAD_BYTES = 150


def split_words(text: str) -> list[str]:
    """``text`` cut before every ``' '`` followed by a non-space: ``'a b'`` -> ``['a', ' b']``."""
    return WORD_START.split(text)


class WordCache:
    """``tokenize_batch`` through a bounded per-word cache of ``tokenize_words``' answers.

    Safe for concurrent calls (a pool actor may map two batches in threads): a call looks words
    up in the dict it started with, and a full cache is replaced by a new one, never emptied.
    """

    def __init__(self, tokenize_words: Callable[[list[str]], list[list[str]]],
                 max_bytes: int = MAX_CACHE_BYTES) -> None:
        self._tokenize_words = tokenize_words
        self.max_bytes = max_bytes
        self._pieces: dict[str, list[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._pieces)

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        words = list(map(WORD_START.split, texts))
        known = self._pieces
        missing = {word for text_words in words for word in text_words if word not in known}
        if missing:
            self._learn(known, list(missing))
        get = known.__getitem__
        return [list(chain.from_iterable(map(get, text_words))) for text_words in words]

    def _learn(self, known: dict[str, list[str]], missing: list[str]) -> None:
        pieces = self._tokenize_words(missing)
        if len(pieces) != len(missing):
            raise RuntimeError(f"the tokenizer gave {len(pieces)} results for {len(missing)} words")
        known.update(zip(missing, pieces))   # this call's lookups read `known` even if replaced below
        added = sum(map(len, missing)) + ENTRY_OVERHEAD_BYTES * len(missing)
        self._bytes += added
        if self._bytes > self.max_bytes:   # full: start over with this call's new words, if they fit
            fits = added <= self.max_bytes
            self._pieces, self._bytes = (dict(zip(missing, pieces)), added) if fits else ({}, 0)


def word_splittable(pre_tokenizer: dict[str, Any] | None, normalizer: Any,
                    added_tokens: Sequence[Any]) -> bool:
    """Whether a Rust tokenizer with these parts tokenizes a text as the concatenation of its
    words (module docstring). ``pre_tokenizer``: its JSON state; ``added_tokens``: its
    ``AddedToken`` objects."""
    if normalizer is not None or not isinstance(pre_tokenizer, dict):
        return False
    if (pre_tokenizer.get("type"), pre_tokenizer.get("add_prefix_space"), pre_tokenizer.get("use_regex")) != \
            ("ByteLevel", False, True):
        return False
    return all(not (token.lstrip or token.rstrip or token.single_word)
               and not any(ch.isspace() for ch in token.content) for token in added_tokens)
