"""Corpus sources: local files, the notebook's Hugging Face datasets, and Python's own docs.

Every source yields ``Document``s with stable ids, in a deterministic order, and fails loudly:
a missing text field, invalid UTF-8 or an unreachable dataset is an error naming the input,
never an empty stream.

    iter_local_documents("books/")              # .txt, .txt.gz, .jsonl, .jsonl.gz, .parquet
    StreamingDatasetLoader().load_streaming("wikitext", max_samples=100)
    pydoc_corpus()                              # no network, present on every Python install
"""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from katoray.checks import check_int
from katoray.errors import ConfigError, DocumentError, KatorayError
from katoray.text.segment import Document
from katoray.text.tokenizers import offline_env_var, probe_hub

log = logging.getLogger(__name__)

DATASET_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
LOCAL_SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz", ".parquet")
_HASH_BLOCK = 1 << 20               # bytes read at a time when hashing files


class CorpusError(DocumentError):
    """A corpus file or row cannot be read as text; the message names the file and row."""


class DatasetUnavailableError(KatorayError, ConnectionError):
    """A Hugging Face dataset could not be loaded (offline, unreachable, or gone)."""


@dataclass(frozen=True)
class DatasetSpec:
    hf_id: str
    config: str | None
    text_field: str
    est_samples: int                # rows in the train split, as the notebook's registry states
    description: str


# The notebook's registry (kato-lm's streaming_dataset_loader.py): split 'train', streaming.
DATASETS: dict[str, DatasetSpec] = {
    "c4": DatasetSpec("allenai/c4", "en", "text", 364_868_892,
                      "Colossal Clean Crawled Corpus, English web pages"),
    "redpajama_sample": DatasetSpec("togethercomputer/RedPajama-Data-1T-Sample", None, "text",
                                    1_000_000, "1B-token sample of RedPajama"),
    "pile": DatasetSpec("monology/pile-uncopyrighted", None, "text", 210_000_000,
                        "The Pile without its copyrighted subsets"),
    "refinedweb": DatasetSpec("tiiuae/falcon-refinedweb", None, "content", 968_000_015,
                              "Falcon RefinedWeb, filtered web pages (text field 'content')"),
    "dolma": DatasetSpec("allenai/dolma", None, "text", 3_000_000_000, "AI2 Dolma"),
    "wikitext": DatasetSpec("Salesforce/wikitext", "wikitext-103-raw-v1", "text", 1_801_350,
                            "WikiText-103; rows are lines or paragraphs, not articles"),
    "openwebtext": DatasetSpec("Skylion007/openwebtext", None, "text", 8_013_769,
                               "OpenWebText, web pages linked from Reddit"),
    "bookcorpus": DatasetSpec("bookcorpusopen", None, "text", 74_000_000,
                              "BookCorpusOpen (a legacy script dataset: may no longer load)"),
    "simple_wiki": DatasetSpec("legacy-datasets/wikipedia", "20220301.simple", "text", 205_328,
                               "Simple English Wikipedia (a legacy script dataset: may no "
                               "longer load)"),
}


class StreamingDatasetLoader:
    """The notebook's loader: stream a registered Hugging Face dataset as ``Document``s."""

    DATASETS = DATASETS

    def list_datasets(self) -> list[str]:
        return list(self.DATASETS)

    def get_dataset_info(self, key: str) -> dict[str, Any]:
        return {"key": key, **asdict(self._spec(key))}

    def load_streaming(self, key: str, max_samples: int | None = None,
                       skip: int = 0) -> "DocumentStream":
        """Documents of dataset ``key``, streamed; the dataset is opened before this returns.

        Rows whose text is empty or whitespace are not documents: they are skipped and counted
        (``stream.empty_rows``). ``skip`` and ``max_samples`` count documents, not raw rows, so
        resuming with ``skip=<documents already trained>`` continues exactly where a run stopped
        (the skipped rows are still read from the stream: exact, not free).

        Raises:
            ConfigError: unknown key (the message lists the known keys) or bad counts.
            DatasetUnavailableError: the dataset cannot be loaded (offline, unreachable, gone).
        """
        spec = self._spec(key)
        check_int("max_samples", max_samples, 0, allow_none=True)
        check_int("skip", skip, 0)
        return DocumentStream(key, spec, _open_hf_dataset(key, spec), max_samples, skip)

    def _spec(self, key: str) -> DatasetSpec:
        if key not in self.DATASETS:
            raise ConfigError(f"unknown dataset key {key!r}; known keys: "
                              f"{', '.join(self.DATASETS)}. For your own text pass a local file "
                              f"or folder instead (data=PATH in Python, --data PATH on the command line)")
        return self.DATASETS[key]


class DocumentStream:
    """Iterable of a dataset's documents; counts rows read and empty rows skipped as it goes."""

    def __init__(self, key: str, spec: DatasetSpec, rows: Iterable[dict],
                 max_samples: int | None, skip: int) -> None:
        self.key, self.spec, self._rows = key, spec, rows
        self.max_samples, self.skip = max_samples, skip
        self.rows_read = 0
        self.empty_rows = 0
        self.documents = 0          # yielded, after skip

    def __iter__(self) -> Iterator[Document]:
        self.rows_read = self.empty_rows = self.documents = 0
        if self.max_samples == 0:
            return
        sample_idx = 0              # documents seen, skipped ones included
        for row_idx, row in enumerate(self._rows):
            self.rows_read += 1
            where = f"dataset {self.key!r} ({self.spec.hf_id}), row {row_idx}"
            text = _text_of(row, self.spec.text_field, where)
            if not text.strip():
                self.empty_rows += 1
                continue
            sample_idx += 1
            if sample_idx <= self.skip:
                continue
            yield self._document(text, row, row_idx, sample_idx - 1)
            self.documents += 1
            if self.documents == self.max_samples:
                return

    def _document(self, text: str, row: dict, row_idx: int, sample_idx: int) -> Document:
        metadata = {k: v for k, v in row.items() if k != self.spec.text_field}
        metadata.update(dataset_key=self.key, hf_id=self.spec.hf_id, row=row_idx,
                        sample_idx=sample_idx)
        return Document(text, doc_id=f"{self.key}#{row_idx}", source=f"hf:{self.spec.hf_id}",
                        title=_title_of(row), metadata=metadata)


def _open_hf_dataset(key: str, spec: DatasetSpec) -> Iterable[dict]:
    # With offline mode on, `datasets` answers at once (and may serve its cache); otherwise ask
    # the Hub ourselves first, because the client would retry for about 47 s before failing.
    if offline_env_var(DATASET_OFFLINE_VARS) is None:
        reason = probe_hub()
        if reason is not None:
            raise DatasetUnavailableError(_unavailable_message(key, spec, reason))
    import datasets  # heavy import: only when a Hub dataset is asked for

    try:
        return datasets.load_dataset(spec.hf_id, spec.config, split="train", streaming=True)
    except Exception as error:      # re-raised below, naming the dataset and the way out
        raise DatasetUnavailableError(
            _unavailable_message(key, spec, f"{type(error).__name__}: {error}")) from error


def _unavailable_message(key: str, spec: DatasetSpec, reason: str) -> str:
    config = f", config {spec.config!r}" if spec.config else ""
    return (f"dataset {key!r} ({spec.hf_id}{config}) could not be loaded from the Hugging Face "
            f"Hub: {reason}. Train on a local file or folder instead (.txt, .jsonl, "
            f".jsonl.gz or .parquet: data=PATH in Python, --data PATH on the command line), or go online and unset HF_DATASETS_OFFLINE / "
            f"HF_HUB_OFFLINE")


# -- local files ----------------------------------------------------------------------------------
def iter_local_documents(path: str | Path, text_field: str = "text",
                         max_samples: int | None = None) -> Iterator[Document]:
    """Documents from a file or a folder, in sorted path order.

    A .txt/.txt.gz file is one document (id: its path); each row of a .jsonl/.jsonl.gz/.parquet
    file is one document (id: '<path>#<row>', rows counted from 0, blank jsonl lines skipped).
    In a folder, paths are relative to it and files of other kinds are skipped with a warning.
    Rows are yielded as they are, empty text included (the trainer decides what to do).

    Raises:
        CorpusError: no such path, unsupported file, invalid UTF-8 (file and byte offset),
            invalid JSON (file and line), missing or non-text field (file, row, fields found).
    """
    check_int("max_samples", max_samples, 0, allow_none=True)
    documents = itertools.chain.from_iterable(
        _iter_file(file, rel, text_field) for file, rel in local_files(path))
    return itertools.islice(documents, max_samples)


def local_files(path: str | Path) -> list[tuple[Path, str]]:
    """(file, id prefix) for each corpus file at ``path``, sorted by relative path."""
    root = Path(path).expanduser()
    if root.is_file():
        if _kind(root) is None:
            raise CorpusError(f"{str(root)!r} is not a supported corpus file; "
                              f"use one of {', '.join(LOCAL_SUFFIXES)}")
        return [(root, root.name)]
    if not root.is_dir():
        raise CorpusError(f"corpus path {str(root)!r} does not exist")
    found = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*")
                   if p.is_file() and not _hidden(p.relative_to(root)))
    files = [(p, rel) for rel, p in found if _kind(p) is not None]
    if len(files) < len(found):
        log.warning("%s: skipping %d file(s) that are not %s", root, len(found) - len(files),
                    "/".join(LOCAL_SUFFIXES))
    if not files:
        raise CorpusError(f"folder {str(root)!r} holds no corpus files "
                          f"({', '.join(LOCAL_SUFFIXES)})")
    return files


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((suffix for suffix in sorted(LOCAL_SUFFIXES, key=len, reverse=True)
                 if name.endswith(suffix)), None)


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _iter_file(path: Path, rel: str, text_field: str) -> Iterator[Document]:
    kind = _kind(path)
    if kind in (".txt", ".txt.gz"):
        yield _text_file(path, rel)
    elif kind in (".jsonl", ".jsonl.gz"):
        yield from _jsonl_rows(path, rel, text_field)
    else:
        yield from _parquet_rows(path, rel, text_field)


def _text_file(path: Path, rel: str) -> Document:
    try:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.name.endswith(".gz") else data
    except OSError as error:
        raise CorpusError(f"{path}: cannot read ({error})") from error
    return Document(_decode(data, path, "", 0).removeprefix("\ufeff"), doc_id=rel,
                    source=rel, title=path.name[: -len(_kind(path) or "")], metadata={"path": rel})


def _jsonl_rows(path: Path, rel: str, text_field: str) -> Iterator[Document]:
    opener = gzip.open if path.name.endswith(".gz") else open
    row, offset = 0, 0
    try:
        with opener(path, "rb") as lines:
            for line_no, raw in enumerate(lines, 1):
                if not raw.strip():     # blank lines are not rows
                    offset += len(raw)
                    continue
                line = _decode(raw, path, f" on line {line_no}", offset)
                offset += len(raw)
                record = _json_object(line.removeprefix("\ufeff"), path, line_no, text_field)
                text = _text_of(record, text_field, f"{path}, row {row} (line {line_no})")
                yield _row_document(text, record, text_field, rel, row)
                row += 1
    except OSError as error:        # e.g. gzip.BadGzipFile, which does not name the file
        raise CorpusError(f"{path}: cannot read ({type(error).__name__}: {error})") from error


def _json_object(line: str, path: Path, line_no: int, text_field: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{path}, line {line_no}: not valid JSON ({error.msg} at column "
                          f"{error.colno})") from error
    except RecursionError:      # Python's parser recurses per nesting level
        raise CorpusError(f"{path}, line {line_no}: JSON nested too deeply to read (more than about "
                          f"{sys.getrecursionlimit()} levels); a corpus row is an object with a {text_field!r} "
                          "field") from None
    if not isinstance(record, dict):
        raise CorpusError(f"{path}, line {line_no}: expected a JSON object with a "
                          f"{text_field!r} field, got {type(record).__name__}")
    return record


def _parquet_rows(path: Path, rel: str, text_field: str) -> Iterator[Document]:
    import pyarrow as pa          # imported here: only parquet corpora need it
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise CorpusError(f"{path}: cannot read as parquet ({error})") from error
    fields = parquet.schema_arrow.names
    if text_field not in fields:
        raise CorpusError(f"{path}, row 0: no field {text_field!r}; available fields: {fields}. "
                          f"Pass the right one with text_field= (--text-field)")
    row = 0
    for batch in parquet.iter_batches():
        columns = batch.to_pydict()
        for i in range(batch.num_rows):
            record = {name: columns[name][i] for name in fields}
            value = record[text_field]
            if isinstance(value, bytes):
                record[text_field] = _decode(value, path, f" in row {row}", 0)
            text = _text_of(record, text_field, f"{path}, row {row}")
            yield _row_document(text, record, text_field, rel, row)
            row += 1


def _row_document(text: str, record: dict, text_field: str, rel: str, row: int) -> Document:
    metadata = {k: v for k, v in record.items() if k != text_field}
    metadata.update(path=rel, row=row)
    return Document(text, doc_id=f"{rel}#{row}", source=rel, title=_title_of(record),
                    metadata=metadata)


def _decode(data: bytes, path: Path, where: str, offset: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: invalid UTF-8{where} at byte {offset + error.start} "
                          f"({error.reason}); re-encode the file as UTF-8, e.g. "
                          f"iconv -f latin1 -t utf-8") from error


def _text_of(row: Any, text_field: str, where: str) -> str:
    if not isinstance(row, dict) or text_field not in row:
        fields = list(row) if isinstance(row, dict) else type(row).__name__
        raise CorpusError(f"{where}: no field {text_field!r}; available fields: {fields}. "
                          f"Pass the right one with text_field= (--text-field)")
    text = row[text_field]
    if not isinstance(text, str):
        raise CorpusError(f"{where}: field {text_field!r} holds {type(text).__name__}, not text")
    return text


def _title_of(row: dict) -> str:
    title = row.get("title", "")
    return title if isinstance(title, str) else ""


# -- the corpus every Python has ------------------------------------------------------------------
def pydoc_corpus() -> Iterator[Document]:
    """Python's language reference topics (``pydoc_data.topics``), one document per topic,
    sorted by topic name: about 80 documents and 0.5 MB of English, with no download."""
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield Document(topics[key], doc_id=f"pydoc#{key}", source="pydoc_data.topics",
                       title=key, metadata={"topic": key})


# -- manifests ------------------------------------------------------------------------------------
def file_identity(path: str | Path) -> dict[str, Any]:
    """The corpus files at ``path`` with their sizes and sha256, for a run manifest."""
    files = [{"path": rel, "bytes": file.stat().st_size, "sha256": _file_sha256(file)}
             for file, rel in local_files(path)]
    return {"path": str(Path(path).expanduser().resolve()), "files": files,
            "total_bytes": sum(f["bytes"] for f in files)}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
