"""Corpora as shards of document batches with deterministic ids (pure: Ray Data reads them in
``katoray.runtime.source``).

A corpus is a list of **shards** in a fixed order: a folder gives one shard per corpus file
(sorted by relative path), a single file one shard, a Hugging Face dataset key one shard (read
sequentially, streaming), the built-in pydoc corpus one shard, an in-memory document list one
shard. ``iter_batches`` cuts a shard into batches of documents (``katoray.config.Batching``: up to
``batch_size`` documents, closed early at ``batch_chars``), each with its id.

A batch id names the shard and the batch's position in it, so ids never depend on Ray's block
layout or on which worker reads what: a resume skips finished ids. An id denotes the same
documents for the same corpus files, ``Batching`` and ``max_samples`` (``batching_fingerprint``
covers all but ``max_samples``, which a resume must keep: it cuts the last batch).

``max_samples`` means the first N documents in (shard, index) order. With several shards and
``max_samples`` set, the planner counts the documents of leading shards on the driver (jsonl:
non-blank lines, parquet: row counts from the file footer, txt: 1) until N is reached.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from katoray.checks import check_int
from katoray.config import Batching
from katoray.errors import ConfigError

SHARD_DIGITS = 5
BATCH_DIGITS = 8


def batching_fingerprint(batching: Batching, shards: Sequence["Shard"]) -> str:
    """Short hash of what batch ids refer to: the shards' files and the batching."""
    identity = {"shards": [s.identity() for s in shards], "text_field": batching.text_field,
                "batch_size": batching.batch_size, "batch_chars": batching.batch_chars}
    if batching.first_batch_chars is not None:   # (absent: the fingerprint of a run from before the ramp)
        identity["first_batch_chars"] = batching.first_batch_chars
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Shard:
    """One sequentially read part of a corpus.

    ``kind`` is ``file`` (``location`` = absolute path, ``name`` = id prefix of its documents),
    ``hf`` (``location`` = dataset key), ``pydoc`` or ``documents`` (``documents`` in memory).
    ``limit`` keeps only the first ``limit`` documents (max_samples).
    """

    index: int
    kind: str
    location: str = ""
    name: str = ""
    limit: int | None = None
    documents: tuple = field(default=(), repr=False)

    def identity(self) -> dict[str, Any]:
        """What makes this shard's documents what they are (for the batch-key fingerprint)."""
        out: dict[str, Any] = {"kind": self.kind, "name": self.name or self.location}
        if self.kind == "file":
            out["bytes"] = Path(self.location).stat().st_size
        if self.kind == "documents":
            out["sha1"] = hashlib.sha1(pickle.dumps([_doc_tuple(d) for d in self.documents], 5)).hexdigest()
        return out


# -- planning ------------------------------------------------------------------------------------
def plan_shards(data: Any = None, dataset_key: str | None = None, text_field: str = "text",
                max_samples: int | None = None) -> list[Shard]:
    """The shards of a corpus given as ``data`` (a path, or a list of ``Document``/str) or a
    dataset key (a registered Hugging Face key, or ``"pydoc"``), cut to ``max_samples``.

    Raises:
        ConfigError: neither or both of ``data`` and ``dataset_key``; bad ``max_samples``.
        CorpusError: the path does not exist or holds no corpus files.
    """
    check_int("max_samples", max_samples, 0, allow_none=True)
    if (data is None) == (dataset_key is None):
        raise ConfigError("give exactly one corpus: data=<file, folder or list of documents> or "
                          "dataset_key=<registered dataset key, or 'pydoc'>")
    if dataset_key is not None:
        return [_dataset_shard(dataset_key, max_samples)]
    if isinstance(data, (str, Path)):
        return _file_shards(Path(data), text_field, max_samples)
    if isinstance(data, Iterable):
        docs = tuple(_as_document(d, i) for i, d in enumerate(data))
        return [Shard(0, "documents", name="documents", documents=docs[:max_samples])]
    raise ConfigError(f"data must be a path or a list of documents, got {type(data).__name__}")


def _dataset_shard(key: str, max_samples: int | None) -> Shard:
    if key == "pydoc":
        return Shard(0, "pydoc", name="pydoc", limit=max_samples)
    from katoray.text.corpora import StreamingDatasetLoader

    # Opened here once, on the driver: an unknown key or an unreachable dataset fails now, named,
    # before any actor starts (the read task opens it again to stream it).
    StreamingDatasetLoader().load_streaming(key, max_samples=0)
    return Shard(0, "hf", location=key, name=f"hf:{key}", limit=max_samples)


def _file_shards(path: Path, text_field: str, max_samples: int | None) -> list[Shard]:
    from katoray.text.corpora import local_files

    files = local_files(path)
    shards: list[Shard] = []
    remaining = max_samples
    for index, (file, rel) in enumerate(files):
        if remaining == 0:
            break
        limit = None
        if remaining is not None and len(files) > 1:
            count = count_documents(file)
            limit = min(count, remaining)
            remaining -= limit
        elif remaining is not None:
            limit = remaining
        shards.append(Shard(index, "file", str(file.resolve()), rel, limit))
    return shards


def count_documents(path: Path) -> int:
    """Documents in one corpus file without parsing them (the reader's own rules)."""
    name = path.name.lower()
    if name.endswith((".txt", ".txt.gz")):
        return 1
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as lines:   # the reader skips lines that are blank once decoded
        return sum(1 for line in lines if line.decode("utf-8", "replace").strip())


def _as_document(item: Any, i: int):
    from katoray.text.segment import Document

    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(item, doc_id=f"documents#{i}", source="documents")
    raise ConfigError(f"data[{i}] must be a Document or a str, got {type(item).__name__}")


# -- reading -------------------------------------------------------------------------------------
def iter_shard(shard: Shard, text_field: str = "text") -> Iterator:
    """The shard's documents, in order, at most ``limit``."""
    import itertools

    if shard.kind == "file":
        from katoray.text import corpora

        # The folder reader's per-file step, so ids are '<path relative to the folder>#<row>'.
        docs: Iterable = corpora._iter_file(Path(shard.location), shard.name, text_field)
    elif shard.kind == "hf":
        from katoray.text.corpora import StreamingDatasetLoader

        return iter(StreamingDatasetLoader().load_streaming(shard.location, max_samples=shard.limit))
    elif shard.kind == "pydoc":
        from katoray.text.corpora import pydoc_corpus

        docs = pydoc_corpus()
    elif shard.kind == "documents":
        docs = shard.documents
    else:
        raise ConfigError(f"unknown shard kind {shard.kind!r}")
    return itertools.islice(docs, shard.limit)


def batch_id(shard_index: int, batch_index: int) -> str:
    """``s00003-b00000012``: the 13th batch of the 4th shard."""
    return f"s{shard_index:0{SHARD_DIGITS}d}-b{batch_index:0{BATCH_DIGITS}d}"


def iter_batches(shard: Shard, batching: Batching = Batching(),
                 skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, list]]:
    """(batch id, documents) of one shard, skipping ids in ``skip``.

    A batch closes at ``batch_size`` documents or once it holds ``batch_chars`` characters of
    text (a document is never split), so books and one-line rows both make useful batches. The
    run's first shard ramps up to that size (``Batching.chars_limit``), so the pipeline starts on a
    small batch. Batch boundaries depend on the shard and the batching alone, never on ``skip``.
    """
    batch: list = []
    chars, index = 0, 0
    size, max_chars = batching.batch_size, batching.chars_limit(shard.index, 0)
    for doc in iter_shard(shard, batching.text_field):
        batch.append(doc)
        chars += len(doc.text)
        if len(batch) == size or (max_chars is not None and chars >= max_chars):
            if batch_id(shard.index, index) not in skip:
                yield batch_id(shard.index, index), batch
            batch, chars, index = [], 0, index + 1
            max_chars = batching.chars_limit(shard.index, index)
    if batch and batch_id(shard.index, index) not in skip:
        yield batch_id(shard.index, index), batch


def _doc_tuple(doc) -> tuple:
    return (doc.text, doc.doc_id, doc.source, doc.title, doc.metadata)


def encode_documents(docs: Sequence) -> bytes:
    return pickle.dumps([_doc_tuple(d) for d in docs], protocol=5)


def decode_documents(payload: bytes) -> list:
    from katoray.text.segment import Document

    return [Document(text, doc_id, source, title, metadata) for text, doc_id, source, title, metadata
            in pickle.loads(payload)]
