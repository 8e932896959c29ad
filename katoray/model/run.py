"""``open_run``: a read-only handle over a trained run, to predict, generate and decode with it.

    h = katoray.open_run("20261126-101500-3fa9c2", runs_dir="runs")
    h.predict("And God said", level=0, top=3)       # KATO's predictions, present and future as text
    h.next_tokens("And God said", k=5)               # [('Ġunto', 0.41), (',', 0.2), ...]
    h.generate("And God said", max_tokens=40, seed=1)
    h.decode(1, "PTRN|...")                           # the text a level-1 pattern stands for

Everything comes from the run's manifest: its knowledge bases, its tokenizer (checked against the
vocabulary hash the run recorded) and its hierarchy (mode, chunk sizes, segmentation), so a context
is tokenized and cut into patterns exactly as training cut its documents. ``attach=True`` talks to
the run's live node actors instead of opening the stores for predictions and pattern reads (a
driver script on the cluster); the next-token index is then read from the stores those actors serve.
"""
from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

from katoray.engine.naming import strip_prefix
from katoray.errors import ConfigError, KatorayError
from katoray.generation.unravel import decode_pieces
from katoray.config import TrainConfig
from katoray.hierarchy.mapping import TokenizedDocument, level_symbols
from katoray.hierarchy.prepare import DocumentPreparer
from katoray.jobs.manifest import TrainingManifest
from katoray.model.nodes import LocalNode
from katoray.text.segment import Document


def open_run(run_id: str, runs_dir: str | os.PathLike = "runs", attach: bool = False,
             mongo_uri: str | None = None) -> "Hierarchy":
    """A read-only ``Hierarchy`` over run ``run_id`` in ``runs_dir``.

    Args:
        attach: use the run's live node actors (``runtime.attach_nodes``; Ray must be connected,
            e.g. ``ray.init(address="auto")``) instead of opening its stores for predictions.
        mongo_uri: for a MongoDB run, the server's URI with its password (the manifest keeps none).

    Raises:
        RunNotFoundError: no such run (or its knowledge-base files are gone). ConfigError: the
            tokenizer it was trained with is not the one found now.
    """
    from katoray.jobs.runs import load_manifest

    return Hierarchy(load_manifest(run_id, runs_dir), attach=attach, mongo_uri=mongo_uri)


class Hierarchy:
    """A trained hierarchy: predictions, next tokens, generation and decoding (module docstring)."""

    def __init__(self, manifest: TrainingManifest, attach: bool = False, mongo_uri: str | None = None) -> None:
        config = manifest.config
        self.manifest = manifest
        self.run_id = manifest.run_id
        self.config = TrainConfig.from_dict(config).hierarchy     # what the run's map was
        self.tokenizer = _run_tokenizer(manifest)
        self.preparer = DocumentPreparer(self.tokenizer, config["segment_method"], config["mode"])
        self._mongo_uri = mongo_uri
        self._kbs: list | None = None
        self.nodes = self._actor_nodes() if attach else [LocalNode(node, kb) for node, kb in
                                                         zip(self._node_ids(), self.kbs)]
        self._index = None
        self._decoders: dict[int, Any] = {}
        self._pieces: dict[tuple[int, str], list[str]] = {}

    # -- the run's parts -------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    @property
    def kbs(self) -> list:
        """The run's knowledge bases, level order (opened on first use)."""
        if self._kbs is None:
            stores = self.manifest.open_stores(self._mongo_uri)
            self._kbs = [stores[f"node{i}"] for i in range(self.num_levels)]
        return self._kbs

    def _node_ids(self) -> list[str]:
        return [self.manifest.nodes[f"node{i}"]["node_id"] for i in range(self.num_levels)]

    def _actor_nodes(self) -> list:
        from katoray.runtime.node import ActorNode, attach_nodes

        return [ActorNode(handle) for handle in attach_nodes(self.run_id, self.num_levels)]

    @property
    def index(self):
        """The ``model.index.HierarchyIndex`` of the run's knowledge bases (read on first use)."""
        if self._index is None:
            from katoray.model.index import HierarchyIndex

            self._index = HierarchyIndex(self.kbs)
        return self._index

    def decoder(self, levels: int | None = None):
        """The next-token decoder over ``levels`` levels (None: all; 1: node0 alone)."""
        from katoray.model.decoder import NextTokenDecoder

        key = self.num_levels if levels is None else levels
        if key not in self._decoders:
            self._decoders[key] = NextTokenDecoder(self.index, key)
        return self._decoders[key]

    # -- contexts ------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """A context's token pieces, as training tokenizes a document (separators included, no end)."""
        return self._prepared(text).tokens()

    def _prepared(self, context: str | Sequence[str]) -> TokenizedDocument:
        if isinstance(context, str):
            return self.preparer.prepare([Document(context, doc_id="<context>")], complete=False)[0]
        pieces = list(context)
        if not all(isinstance(p, str) for p in pieces):
            raise KatorayError(f"a context is text or a list of token pieces (str), got {context!r}")
        return TokenizedDocument("<context>", [[[pieces]]])

    def observed(self, context: str | Sequence[str], level: int = 0) -> list[str]:
        """What ``level`` observes of the context: node0 its tokens, level k the names of the
        level k-1 patterns it completes, computed as training computes them."""
        self._check_level(level)
        return level_symbols(self._prepared(context), self.config)[level]

    # -- the API -------------------------------------------------------------------------------------
    def predict(self, context: str | Sequence[str], level: int = 0, top: int | None = None) -> list[dict]:
        """KATO's predictions for the context observed at ``level`` (one symbol per event), ranked,
        each with ``present_text`` and ``future_text``: its present and future decoded to text."""
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
            raise KatorayError(f"top must be None or an integer >= 1, got {top!r}")
        symbols = self.observed(context, level)
        predictions = self.nodes[level].predictions(symbols)[:top]
        for p in predictions:
            p["present_text"] = self._events_text(level, p["present"])
            p["future_text"] = self._events_text(level, p["future"])
        return predictions

    def next_tokens(self, context: str | Sequence[str], k: int = 5, *, levels: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` most likely next token pieces, best first, with their probabilities under the
        decoder (``model.decoder``); ``levels``: use that many levels (1: node0 alone)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise KatorayError(f"k must be an integer >= 1, got {k!r}")
        pieces = context if not isinstance(context, str) else self.tokenize(context)
        decoder = self.decoder(levels)
        return decoder.top(decoder.token_ids(list(pieces)), k)

    def generate(self, prompt: str = "", max_tokens: int = 100, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None, mode: str = "predict", level: int | None = None) -> str:
        """Text generated after ``prompt`` (not included), ``model.generate`` says how."""
        return "".join(span.text for span in self.stream(prompt, max_tokens, temperature, top_k, seed, mode, level))

    def stream(self, prompt: str = "", max_tokens: int = 100, temperature: float = 1.0, top_k: int | None = None,
               seed: int | None = None, mode: str = "predict", level: int | None = None,
               sources: bool = False) -> Iterator:
        """``generate`` as it goes: ``model.generate.Span`` after span (text, and with ``sources``
        the training documents it came from)."""
        from katoray.model.generate import Generation

        return Generation(self, max_tokens, temperature, top_k, seed, mode, level, sources).run(prompt)

    def decode(self, level: int, name: str) -> str:
        """The text a pattern stands for (unravelled top-down to node0's tokens)."""
        self._check_level(level)
        return decode_pieces(self.pieces(level, name), self.tokenizer)

    def pieces(self, level: int, name: str) -> list[str]:
        """The node0 token pieces of pattern ``name`` stored at ``level``."""
        key = (level, strip_prefix(name))
        if key not in self._pieces:
            events = self.nodes[level].pattern(key[1])
            if events is None:
                raise KatorayError(f"pattern {name} is not in node{level} of run {self.run_id} (was it deleted by a "
                                   "cleanup, or is it from another run?)")
            symbols = [s for event in events for s in event]
            self._pieces[key] = symbols if level == 0 else [p for s in symbols for p in self.pieces(level - 1, s)]
        return self._pieces[key]

    def stats(self) -> dict[str, Any]:
        """The run, its hierarchy and per level its patterns and KATO's totals."""
        m = self.manifest
        return {"run_id": self.run_id, "status": m.status, "documents": m.documents, "tokens": m.tokens,
                "tokenizer": m.tokenizer.get("name"), "mode": self.config.mode,
                "chunk_sizes": list(self.config.chunk_sizes), "segment_method": m.config["segment_method"],
                "levels": [dict(node.stats(), level=i) for i, node in enumerate(self.nodes)]}

    def close(self) -> None:
        for kb in self._kbs or ():
            kb.close()

    def __enter__(self) -> "Hierarchy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Hierarchy({self.run_id!r}, levels={self.num_levels}, mode={self.config.mode!r})"

    # -- helpers ---------------------------------------------------------------------------------------
    def _events_text(self, level: int, events: list[list[str]]) -> str:
        symbols = [s for event in events for s in event]
        pieces = symbols if level == 0 else [p for s in symbols for p in self.pieces(level - 1, s)]
        return decode_pieces(pieces, self.tokenizer)

    def _check_level(self, level: int) -> None:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < self.num_levels:
            raise KatorayError(f"level must be 0..{self.num_levels - 1} (run {self.run_id} has {self.num_levels} "
                               f"levels), got {level!r}")


def _run_tokenizer(manifest: TrainingManifest):
    """The tokenizer the run was trained with; ConfigError if its vocabulary changed since."""
    from katoray.text.tokenizers import load_tokenizer

    name = manifest.config.get("tokenizer")
    tokenizer = load_tokenizer(name)
    recorded, found = manifest.tokenizer.get("vocab_sha256"), tokenizer.identity().get("vocab_sha256")
    if recorded != found:
        raise ConfigError(f"run {manifest.run_id} was trained with tokenizer {name!r} of vocabulary sha256 "
                          f"{str(recorded)[:12]}…, but that tokenizer now has {str(found)[:12]}…: its patterns would "
                          "decode wrongly. Restore the tokenizer files the run used")
    return tokenizer
