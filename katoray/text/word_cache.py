"""Tokenizing each distinct word once: a byte-level tokenizer's pieces, cached per word.

Running text repeats its words (the KJV's 994k GPT-2 tokens come from 29k distinct words), and a
byte-level BPE tokenizer (GPT-2's pre-tokenizer: ``ByteLevel(add_prefix_space=False,
use_regex=True)``, no normalizer, no BPE dropout) gives a text's pieces as the concatenation of
its words' pieces, where a *word* starts at every ``' '`` followed by a non-space character
(``'In the  beginning,'`` -> ``'In'``, ``' the '``, ``' beginning,'``). Why that is exact:

- the pre-tokenizer's regex (``'s|'t|...| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``)
  never matches across such a boundary: only a match's first character may be that space;
- the only look past a match is ``(?!\\S)``, which sees the boundary's space in the text and the
  end of the string in the word: both are "not \\S";
- BPE merges act inside one regex match.

Added tokens (GPT-2's ``<|endoftext|>``) are cut out of the text before the pre-tokenizer runs,
which changes where its matches end (``'a  <|endoftext|>'``: the two spaces are one match), and
may span or strip spaces (``lstrip``, ``rstrip``), so a text holding one is tokenized whole.

Python's ``\\S`` (not ``str.isspace()``) is narrower than "not Unicode White_Space" (the regex
engine's), so a boundary found here is always one there too. ``tests/text/test_word_cache.py``
checks the result against the tokenizer itself for every code point of the BMP after a space,
and on random text.

Measured on the KJV paragraphs (``python scripts/benchmark.py tokenize``), GPT-2 pieces per CPU
second: about 1.9x the tokenizer's own rate with an empty cache, 5.1x once the words are known
(the built-in ``katoray-bytes``: 3.0x and 3.75x); before the cut after each space and the C loops
(``_by_words``), in the same session: 1.8x and 4.2x (2.3x and 3.3x).
"""
from __future__ import annotations

import re
import sys
from collections import ChainMap
from itertools import chain, filterfalse, islice
from operator import itemgetter
from typing import Any, Callable, Mapping, Sequence

WORD_START = re.compile(r"(?= \S)")
# The same cut with the space dropped: the regex then jumps from space to space (a literal first
# character) instead of trying a zero-width match at every position: measured on the KJV, 0.095-0.108
# against 0.138-0.152 CPU us per token (a warm ``tokenize_batch`` costs about 0.25-0.3).
SPACE_BEFORE_WORD = re.compile(r" (?=\S)")
MAX_CACHE_BYTES = 32 * 1024 * 1024   # per cache, as sys.getsizeof counts (a full cache starts over)
DICT_SLOT_BYTES = 100                # a dict entry's share of the table, beyond key and value
MAX_WORD_CHARS = 64                  # longer "words" (URLs, text without spaces) are not kept


def split_words(text: str) -> list[str]:
    """``text`` cut before every ``' '`` followed by a non-space: ``'a b'`` -> ``['a', ' b']``."""
    return WORD_START.split(text)


class WordCache:
    """``tokenize_batch`` through a bounded per-word cache of ``tokenize_texts``' answers.

    Args:
        tokenize_texts: the tokenizer itself: texts -> pieces of each (words, or whole texts).
        added_tokens: the tokenizer's added tokens; a text holding one is tokenized whole.
        max_bytes: the cache's size bound (words, piece lists and pieces, as ``sys.getsizeof``
            counts them); when full, it starts over with the words of the call that filled it.

    A text is cut with ``SPACE_BEFORE_WORD``: its first word, then the words that follow a space,
    without that space. They are cached apart: ``_after`` maps ``w`` to the pieces of ``' ' + w``,
    ``_first`` a text's first word to its own pieces (``'the'`` and ``' the'`` differ).

    Safe for concurrent calls (a pool actor may map two batches in threads): a call looks words
    up in the dicts it started with, and a full cache is replaced by new ones, never emptied.
    Under concurrency the size count is approximate and a word may be tokenized twice; the
    pieces never differ.
    """

    def __init__(self, tokenize_texts: Callable[[list[str]], list[list[str]]], added_tokens: Sequence[str] = (),
                 max_bytes: int = MAX_CACHE_BYTES) -> None:
        self._tokenize_texts = tokenize_texts
        self._added = re.compile("|".join(map(re.escape, added_tokens))) if added_tokens else None
        self.max_bytes = max_bytes
        self._after: dict[str, list[str]] = {}
        self._first: dict[str, list[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._after) + len(self._first)

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        added = self._added
        whole = [] if added is None else [added.search(text) is not None for text in texts]
        if not any(whole):
            return self._by_words(texts)
        found = iter(self._tokenize_texts([text for text, flag in zip(texts, whole) if flag]))   # rare: as they are
        split = iter(self._by_words([text for text, flag in zip(texts, whole) if not flag]))
        return [next(found) if flag else next(split) for flag in whole]

    def _by_words(self, texts: Sequence[str]) -> list[list[str]]:
        cuts = list(map(SPACE_BEFORE_WORD.split, texts))   # [first word, word after a space, ...] per text
        after, first = self._after, self._first
        # C loops over every word (a set, then the unknown ones): a comprehension cost 1/6 of a warm call
        missing_after = list(filterfalse(after.__contains__, set(chain.from_iterable(
            islice(words, 1, None) for words in cuts))))
        missing_first = list(filterfalse(first.__contains__, set(map(itemgetter(0), cuts))))
        get_after = self._learn(after, missing_after, " ") if missing_after else after.__getitem__
        get_first = self._learn(first, missing_first, "") if missing_first else first.__getitem__
        return [list(chain(get_first(words[0]), chain.from_iterable(map(get_after, islice(words, 1, None)))))
                for words in cuts]

    def _learn(self, known: dict[str, list[str]], missing: list[str], space: str) -> Callable[[str], list[str]]:
        """Tokenize ``space + word`` for each of ``missing`` and keep what may be kept, in
        ``known`` (one of this cache's dicts); returns this call's lookup."""
        pieces = self._tokenize_texts([space + word for word in missing] if space else missing)
        if len(pieces) != len(missing):
            raise RuntimeError(f"the tokenizer gave {len(pieces)} results for {len(missing)} words")
        learned = dict(zip(missing, pieces))
        longest = MAX_WORD_CHARS - len(space)
        keep = learned if max(map(len, missing)) <= longest else \
            {word: p for word, p in learned.items() if len(word) <= longest}
        known.update(keep)   # this call's lookups read `known` even if it is replaced below
        added = sum(map(_entry_bytes, keep.items()))
        self._bytes += added
        if self._bytes > self.max_bytes:   # full: start over with this call's new words, if they fit
            fits = added <= self.max_bytes
            self._after, self._first = (dict(keep) if fits and known is self._after else {},
                                        dict(keep) if fits and known is self._first else {})
            self._bytes = added if fits else 0
        return known.__getitem__ if len(keep) == len(learned) else ChainMap(learned, known).__getitem__


def _entry_bytes(entry: tuple[str, list[str]]) -> int:
    word, pieces = entry
    return sys.getsizeof(word) + sys.getsizeof(pieces) + sum(map(sys.getsizeof, pieces)) + DICT_SLOT_BYTES


def word_splittable(pre_tokenizer: Mapping[str, Any] | None, normalizer: Any, model: Mapping[str, Any] | None) -> bool:
    """Whether a Rust tokenizer with these parts tokenizes a text that holds no added token as
    the concatenation of its words (module docstring). ``pre_tokenizer``, ``model``: their JSON
    states."""
    if normalizer is not None or not isinstance(pre_tokenizer, Mapping) or not isinstance(model, Mapping):
        return False
    if (pre_tokenizer.get("type"), pre_tokenizer.get("add_prefix_space"), pre_tokenizer.get("use_regex")) != \
            ("ByteLevel", False, True):
        return False
    return model.get("dropout") in (None, 0, 0.0)   # BPE dropout: a word's pieces vary between calls
