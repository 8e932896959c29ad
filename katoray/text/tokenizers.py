"""Tokenizers: any Hugging Face tokenizer by name or folder, plus a built-in default.

A tokenizer turns text into its string pieces (GPT-2 gives 'Hello world' -> ['Hello', 'Ġworld']),
because KATO stores symbols as strings. Nothing is ever truncated: a 100,000-token paragraph comes
back whole, whatever ``model_max_length`` the tokenizer's files declare.

    tok = load_tokenizer("../shared/tokenizers/gpt2")   # a folder with the tokenizer's files
    tok = load_tokenizer("gpt2")                        # the Hugging Face cache, then the Hub
    tok = load_tokenizer()                              # built-in 'katoray-bytes', no download

The hot path is ``tokenize_batch``: one call into the Rust tokenizer for many texts.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

from katoray.errors import ConfigError
from katoray.text.word_cache import WordCache, word_splittable

DEFAULT_TOKENIZER = "katoray-bytes"
HUB_PROBE_TIMEOUT_S = 3.0           # seconds to wait for the Hub before calling it unreachable
_NO_LIMIT = int(1e30)               # "no maximum length" (transformers' own VERY_LARGE_INTEGER)
_TRUTHY = {"1", "on", "yes", "true"}
TOKENIZER_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

# How a tokenizer marks the start of a word in its pieces.
BYTE_LEVEL = "byte_level"           # GPT-2, RoBERTa, BART, LLaMA-3: 'Ġword' (space), 'Ċ' (newline)
WORDPIECE = "wordpiece"             # BERT: 'word', '##piece' continues the previous piece
SENTENCEPIECE = "sentencepiece"     # T5, LLaMA-2: '▁word'
OTHER = "other"                     # anything else: a piece that starts with a space or a capital

# GPT-2's byte-to-unicode alphabet writes ' ', '\n', '\t', '\r' as these characters.
_BYTE_LEVEL_WORD_STARTS = ("Ġ", "Ċ", "ĉ", "č")
_SENTENCE_MARKS = frozenset(".!?")
# Closing quotes and brackets that may follow a sentence mark, as text and in GPT-2's byte
# alphabet (” is 'âĢĿ', ’ is 'âĢĻ', » is 'Â»').
_CLOSERS = ('"', "'", ")", "]", "}", "”", "’", "»", "âĢĿ", "âĢĻ", "Â»")
_MAYBE_LAST = _SENTENCE_MARKS | {closer[-1] for closer in _CLOSERS}


class TextTokenizer(ABC):
    """What the rest of katoray needs from a tokenizer: text <-> string pieces."""

    name: str                        # what the user asked for
    scheme: str                      # BYTE_LEVEL, WORDPIECE, SENTENCEPIECE or OTHER
    _word_cache: WordCache | None = None   # set by tokenizers whose pieces split at words

    def tokenize(self, text: str) -> list[str]:
        """The pieces of one text, e.g. 'Hello world' -> ['Hello', 'Ġworld'] for GPT-2."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
        return self.tokenize_batch([text])[0]

    def _new_word_cache(self) -> WordCache | None:
        """A per-word cache, for tokenizers whose pieces split at words; None for the others."""
        return None

    def __getstate__(self) -> dict[str, Any]:
        # The word cache is this process's own: a copy (a pool actor's) starts with an empty one.
        state = dict(self.__dict__)
        state.pop("_word_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._word_cache = self._new_word_cache()

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """The pieces of each text, in one call (the fast path): through the per-word cache
        when this tokenizer allows it (:mod:`katoray.text.word_cache`), else directly."""
        words = self._word_cache
        return self.tokenize_batch_direct(texts) if words is None else words.tokenize_batch(texts)

    @abstractmethod
    def tokenize_batch_direct(self, texts: Sequence[str]) -> list[list[str]]:
        """The pieces of each text from the tokenizer itself, every text in full (what
        ``tokenize_batch`` equals, and what the benchmarks call "tokenizing alone")."""

    @abstractmethod
    def decode(self, pieces: Sequence[str]) -> str:
        """Pieces back to text; exact for byte-level tokenizers."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Name, path and a sha256 of the vocabulary: what a run manifest records."""

    def starts_word(self, piece: str) -> bool:
        """True if ``piece`` begins a new word (so a sentence may end before it)."""
        if self.scheme == BYTE_LEVEL:
            return piece.startswith(_BYTE_LEVEL_WORD_STARTS)
        if self.scheme == WORDPIECE:
            return not piece.startswith("##")
        if self.scheme == SENTENCEPIECE:
            return piece.startswith("▁")
        return piece[:1].isspace() or piece[:1].isupper()

    def is_sentence_end(self, piece: str, next_piece: str | None) -> bool:
        """True if a sentence ends after ``piece``: it ends with '.', '!' or '?' (closing quotes
        or brackets may follow inside the piece) and ``next_piece`` starts a new word or is None."""
        return ends_sentence(piece) and (next_piece is None or self.starts_word(next_piece))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def ends_sentence(piece: str) -> bool:
    """True if ``piece`` ends with '.', '!' or '?', possibly followed by closing quotes/brackets."""
    if not piece or piece[-1] not in _MAYBE_LAST:      # fast path: most pieces end in a letter
        return False
    core = _strip_closers(piece)
    return bool(core) and core[-1] in _SENTENCE_MARKS


def is_closer(piece: str) -> bool:
    """True if ``piece`` is only closing quotes or brackets (it belongs to the sentence before)."""
    return bool(piece) and piece[-1] in _MAYBE_LAST and not _strip_closers(piece)


def _strip_closers(piece: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for closer in _CLOSERS:
            if piece.endswith(closer):
                piece, stripped = piece[: -len(closer)], True
                break
    return piece


class ByteWordTokenizer(TextTokenizer):
    """The built-in default, ``'katoray-bytes'``: GPT-2's word splitting without its vocabulary.

    Text is split where GPT-2 splits it before applying BPE merges (runs of letters, of digits, of
    punctuation, of whitespace, and English contractions), and each piece is written in GPT-2's
    byte alphabet, so the space before a word is 'Ġ' and a newline is 'Ċ':
    'Hello  world' -> ['Hello', 'Ġ', 'Ġworld']. Every word is one piece: no vocabulary, no unknown
    pieces, nothing to download, and ``decode(tokenize(text)) == text`` for any text.
    """

    SPEC = ("katoray-bytes/1: tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, "
            "use_regex=True)")

    def __init__(self) -> None:
        from tokenizers import decoders, pre_tokenizers

        self.name = DEFAULT_TOKENIZER
        self.scheme = BYTE_LEVEL
        self._pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        self._decoder = decoders.ByteLevel()
        self._word_cache = self._new_word_cache()

    def _new_word_cache(self) -> WordCache:
        return WordCache(self.tokenize_batch_direct)   # GPT-2's splitting: exact per word

    def tokenize_batch_direct(self, texts: Sequence[str]) -> list[list[str]]:
        # One Rust call per text; the (piece, offsets) tuples are the only Python work.
        split = self._pre.pre_tokenize_str
        return [[piece for piece, _ in split(text)] for text in texts]

    def decode(self, pieces: Sequence[str]) -> str:
        return self._decoder.decode(list(pieces))

    def identity(self) -> dict[str, Any]:
        # No vocabulary: the hash pins the splitting rule instead.
        return {"name": self.name, "kind": "builtin", "path": None, "scheme": self.scheme,
                "vocab_size": None, "vocab_sha256": _sha256(self.SPEC)}


class HuggingFaceTokenizer(TextTokenizer):
    """A ``transformers`` tokenizer, driven through its Rust backend with no truncation."""

    def __init__(self, name: str, hf_tokenizer: Any, source: str) -> None:
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ConfigError(
                f"tokenizer {name!r} has no fast (Rust) backend; katoray needs one. Save it with "
                f"a tokenizer.json (tokenizer.save_pretrained(folder) from a fast tokenizer)")
        backend.no_truncation()    # some tokenizer.json files pin truncation (e.g. at 128)
        backend.no_padding()
        self.name = name
        self.source = source
        self.scheme = _piece_scheme(backend)
        self._hf = hf_tokenizer
        self._hf_class = type(hf_tokenizer).__name__
        self._backend = backend
        self._pieces = _piece_table(backend)
        self._vocab_sha256: str | None = None
        self._word_cache = self._new_word_cache()

    def _new_word_cache(self) -> WordCache | None:
        backend = self._backend
        if not word_splittable(_state(backend.pre_tokenizer), backend.normalizer, _state(backend.model)):
            return None
        added = [token.content for token in backend.get_added_tokens_decoder().values()]
        return WordCache(self.tokenize_batch_direct, added)

    def __getstate__(self) -> dict[str, Any]:
        # Pool actors receive the driver's tokenizer pickled: the Rust backend travels as itself
        # (~1.5 MB for GPT-2, 0.07 s to load), so they never import transformers nor convert
        # vocab files (about 0.75 CPU s per actor). The transformers object is reloaded only if
        # decode needs it.
        state = super().__getstate__()
        state["_hf"] = None
        return state

    def tokenize_batch_direct(self, texts: Sequence[str]) -> list[list[str]]:
        # encode_batch_fast skips offsets and is about twice the speed of encode_batch, but its
        # Encoding.tokens are empty strings: pieces come from the ids through a lookup table.
        encodings = self._backend.encode_batch_fast(list(texts), add_special_tokens=False)
        piece_of = self._pieces.__getitem__
        return [list(map(piece_of, encoding.ids)) for encoding in encodings]

    def decode(self, pieces: Sequence[str]) -> str:
        if self._backend.decoder is not None:
            return self._backend.decoder.decode(list(pieces))
        if self._hf is None:   # unpickled: load transformers' tokenizer the way the original was
            self._hf = load_tokenizer(self.name)._hf
        return self._hf.convert_tokens_to_string(list(pieces))

    def identity(self) -> dict[str, Any]:
        vocab = self._backend.get_vocab(with_added_tokens=True)
        if self._vocab_sha256 is None:
            by_id = sorted(vocab.items(), key=lambda item: item[1])
            self._vocab_sha256 = _sha256(json.dumps(by_id, ensure_ascii=False))
        return {"name": self.name, "kind": "huggingface", "path": self.source,
                "class": self._hf_class, "scheme": self.scheme,
                "vocab_size": len(vocab), "vocab_sha256": self._vocab_sha256}


def load_tokenizer(name_or_path: str | None = None) -> TextTokenizer:
    """A tokenizer by name: None or 'katoray-bytes' (built in), a local folder, or a Hub name.

    A Hub name is looked up in the local Hugging Face cache first; the Hub is contacted only if
    it is not cached, offline mode is off and the Hub answers within a few seconds.

    Raises:
        ConfigError: the folder holds no tokenizer, or the name is unknown or cannot be fetched
            (the message says how to proceed: a local folder, or the built-in default).
    """
    if name_or_path is None or name_or_path == DEFAULT_TOKENIZER:
        return ByteWordTokenizer()
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ConfigError(f"tokenizer must be a name or a folder, got {name_or_path!r}")
    path = Path(name_or_path).expanduser()
    if path.exists():
        return _load_folder(name_or_path, path)
    return _load_by_name(name_or_path)


def _load_folder(name: str, path: Path) -> TextTokenizer:
    if not path.is_dir():
        raise ConfigError(f"tokenizer {name!r} is a file; pass the folder that holds the "
                          f"tokenizer files (tokenizer.json, or vocab.json + merges.txt, ...)")
    # A driver loads the same folder several times (manifest identity, learner, run): converting
    # vocab files costs ~0.3 s each time, so the loaded tokenizer is kept while the files are unchanged.
    key = (name, str(path.resolve()), tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                                   for p in path.iterdir() if p.is_file())))
    cached = _FOLDER_CACHE.get(key)
    if cached is None:
        cached = _FOLDER_CACHE[key] = _load_folder_files(name, path)
    return cached


_FOLDER_CACHE: dict[tuple, TextTokenizer] = {}


def _load_folder_files(name: str, path: Path) -> TextTokenizer:
    try:
        hf = _auto_tokenizer(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        found = sorted(p.name for p in path.iterdir())
        raise ConfigError(
            f"folder {str(path)!r} does not hold a tokenizer that transformers can load "
            f"({type(error).__name__}: {error}). It holds {found}; expected tokenizer.json, or "
            f"vocab.json + merges.txt, or vocab.txt, with tokenizer_config.json") from error
    return HuggingFaceTokenizer(name, hf, source=str(path.resolve()))


def _load_by_name(name: str) -> TextTokenizer:
    try:
        hf = _auto_tokenizer(name, local_files_only=True)
    except (OSError, ValueError) as not_cached:
        reason = offline_env_var(TOKENIZER_OFFLINE_VARS) or probe_hub()
        if reason is not None:
            raise ConfigError(_unreachable_message(name, reason)) from not_cached
        hf = _download(name)
    return HuggingFaceTokenizer(name, hf, source=name)


def _download(name: str) -> Any:
    try:
        return _auto_tokenizer(name)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"unknown tokenizer {name!r}: no such local folder, and the Hugging Face Hub could not "
            f"provide it ({type(error).__name__}: {error}). Pass a folder that holds the "
            f"tokenizer files, or use the built-in default {DEFAULT_TOKENIZER!r}") from error


def _unreachable_message(name: str, reason: str) -> str:
    return (f"tokenizer {name!r} is not a local folder and is not in the Hugging Face cache, and "
            f"the Hub cannot be used: {reason}. Ways out: pass a local folder that holds the "
            f"tokenizer files (tokenizer.json, or vocab.json + merges.txt), e.g. "
            f"tokenizer='/path/to/gpt2' (--tokenizer /path/to/gpt2 on the command line); or use the built-in default {DEFAULT_TOKENIZER!r}, which "
            f"needs no download; or go online and unset HF_HUB_OFFLINE")


def _auto_tokenizer(source: str, **kwargs: Any) -> Any:
    # katoray needs tokenizers only: keep transformers' "PyTorch was not found" advice off stderr.
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers import AutoTokenizer  # heavy import (about 1.5 s): only when needed

    return AutoTokenizer.from_pretrained(source, model_max_length=_NO_LIMIT, **kwargs)


def offline_env_var(names: Sequence[str]) -> str | None:
    """'NAME=value is set' for the first of ``names`` set to a true value, else None."""
    for var in names:
        if os.environ.get(var, "").strip().lower() in _TRUTHY:
            return f"{var}={os.environ[var]} is set"
    return None


def probe_hub(timeout: float = HUB_PROBE_TIMEOUT_S, endpoint: str | None = None) -> str | None:
    """None if the Hugging Face Hub answers within ``timeout`` seconds, else why not.

    One HEAD request with no retries (proxies from the environment are honoured), so an offline
    machine learns in seconds what the Hub client would take about 47 s of retries to say.
    """
    import requests

    url = endpoint or os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        requests.head(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as error:
        return f"{url} did not answer within {timeout:g} s ({type(error).__name__})"
    return None


def _piece_table(backend: Any) -> list[str]:
    """Piece string per token id (added tokens included)."""
    vocab = backend.get_vocab(with_added_tokens=True)
    table = [""] * (max(vocab.values(), default=-1) + 1)
    for piece, token_id in vocab.items():
        table[token_id] = piece
    return table


def _piece_scheme(backend: Any) -> str:
    if type(backend.model).__name__ == "WordPiece":
        return WORDPIECE
    states = [_state(c) for c in (backend.pre_tokenizer, backend.decoder, backend.normalizer)]
    types: set[str] = set()
    _collect_types(states, types)
    if "ByteLevel" in types:
        return BYTE_LEVEL
    # LLaMA-2 style: the normalizer replaces ' ' by '▁' instead of a Metaspace pre-tokenizer.
    if "Metaspace" in types or "▁" in json.dumps(states[2], ensure_ascii=False):
        return SENTENCEPIECE
    return OTHER


def _state(component: Any) -> Any:
    return None if component is None else json.loads(component.__getstate__())


def _collect_types(node: Any, types: set[str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            types.add(node["type"])
        for value in node.values():
            _collect_types(value, types)
    elif isinstance(node, list):
        for value in node:
            _collect_types(value, types)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
