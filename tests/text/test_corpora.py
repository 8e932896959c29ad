"""Corpus sources on files made from KJV text: readers, errors, identities, datasets offline."""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time

import pytest

from katoray.errors import ConfigError
from katoray.text import (
    DATASETS,
    CorpusError,
    DatasetUnavailableError,
    DocumentStream,
    StreamingDatasetLoader,
    file_identity,
    iter_local_documents,
    pydoc_corpus,
)

UNREACHABLE = "http://127.0.0.1:9"   # the discard port: refused at once, no network involved


@pytest.fixture(scope="module")
def books(kjv_books_path):
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as rows:
        return [json.loads(line) for line in rows][:5]      # Genesis .. Deuteronomy


def _write_jsonl(path, rows, gz=False):
    data = "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)


def _write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


# -- local files ---------------------------------------------------------------------------------------
def test_txt_file_is_one_document(tmp_path, books):
    path = tmp_path / "genesis.txt"
    path.write_text(books[0]["text"], encoding="utf-8")
    [doc] = iter_local_documents(path)
    assert doc.text == books[0]["text"]
    assert (doc.doc_id, doc.title, doc.source) == ("genesis.txt", "genesis", "genesis.txt")


def test_jsonl_rows(tmp_path, books):
    path = tmp_path / "books.jsonl"
    _write_jsonl(path, books)
    path.write_bytes(path.read_bytes() + b"\n  \n")                  # trailing blank lines
    docs = list(iter_local_documents(path))
    assert [d.doc_id for d in docs] == [f"books.jsonl#{i}" for i in range(5)]
    assert [d.text for d in docs] == [b["text"] for b in books]
    assert docs[1].title == "Exodus" and docs[1].metadata["abbrev"] == books[1]["abbrev"]
    assert [d.doc_id for d in iter_local_documents(path, max_samples=2)] == [
        "books.jsonl#0", "books.jsonl#1"]


def test_gzip_and_parquet_give_the_same_documents(tmp_path, books):
    _write_jsonl(tmp_path / "a.jsonl.gz", books, gz=True)
    _write_parquet(tmp_path / "b.parquet", books)
    gz = list(iter_local_documents(tmp_path / "a.jsonl.gz"))
    pq = list(iter_local_documents(tmp_path / "b.parquet"))
    assert [d.text for d in gz] == [d.text for d in pq] == [b["text"] for b in books]
    assert pq[4].doc_id == "b.parquet#4" and pq[4].title == books[4]["title"]


def test_folder_is_read_in_sorted_order(tmp_path, books, caplog):
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "exodus.txt").write_text(books[1]["text"], encoding="utf-8")
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(books[0]["text"].encode()))
    _write_jsonl(tmp_path / "m.jsonl", books[2:4])
    _write_parquet(tmp_path / "p.parquet", books[4:])
    (tmp_path / "README.md").write_text("not a corpus file")
    (tmp_path / ".hidden.txt").write_text("hidden")
    with caplog.at_level(logging.WARNING):
        docs = list(iter_local_documents(tmp_path))
    assert [d.doc_id for d in docs] == ["a.txt.gz", "m.jsonl#0", "m.jsonl#1", "p.parquet#0",
                                        "z/exodus.txt"]
    assert [d.text for d in docs] == [books[i]["text"] for i in (0, 2, 3, 4, 1)]
    assert "skipping 1 file" in caplog.text
    assert [d.doc_id for d in iter_local_documents(tmp_path, max_samples=3)] == [
        d.doc_id for d in docs[:3]]


def test_missing_text_field_names_file_row_and_fields(tmp_path, books):
    rows = [books[0], {"title": "no text", "body": "x"}]
    _write_jsonl(tmp_path / "rows.jsonl", rows)
    with pytest.raises(CorpusError) as error:
        list(iter_local_documents(tmp_path / "rows.jsonl"))
    message = str(error.value)
    assert "rows.jsonl" in message and "row 1 (line 2)" in message
    assert "'text'" in message and "['title', 'body']" in message
    _write_parquet(tmp_path / "rows.parquet", [{"content": b["text"]} for b in books])
    with pytest.raises(CorpusError, match=r"rows\.parquet, row 0: no field 'text'.*'content'"):
        list(iter_local_documents(tmp_path / "rows.parquet"))
    assert len(list(iter_local_documents(tmp_path / "rows.parquet", text_field="content"))) == 5


def test_non_text_field_and_bad_json(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "fine"}\n{"text": null}\n')
    with pytest.raises(CorpusError, match=r"a\.jsonl, row 1 \(line 2\): field 'text' holds NoneType"):
        list(iter_local_documents(tmp_path / "a.jsonl"))
    (tmp_path / "b.jsonl").write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(CorpusError, match=r"b\.jsonl, line 2: not valid JSON"):
        list(iter_local_documents(tmp_path / "b.jsonl"))
    (tmp_path / "c.jsonl").write_text('["a list"]\n')
    with pytest.raises(CorpusError, match="expected a JSON object"):
        list(iter_local_documents(tmp_path / "c.jsonl"))
    (tmp_path / "d.jsonl").write_text('{"text": "fine"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(CorpusError, match=r"d\.jsonl, line 2: JSON nested too deeply"):   # not a RecursionError
        list(iter_local_documents(tmp_path / "d.jsonl"))


def test_invalid_utf8_names_file_and_byte(tmp_path, books):
    text = books[0]["text"][:1000].encode("utf-8")
    (tmp_path / "bad.txt").write_bytes(text + b"\xff\xfe tail")
    with pytest.raises(CorpusError, match=r"bad\.txt: invalid UTF-8 at byte 1000"):
        list(iter_local_documents(tmp_path / "bad.txt"))
    first = json.dumps({"text": "ok"}).encode() + b"\n"
    (tmp_path / "bad.jsonl").write_bytes(first + b'{"text": "caf\xe9"}\n')
    offset = len(first) + len(b'{"text": "caf')
    with pytest.raises(CorpusError, match=rf"bad\.jsonl: invalid UTF-8 on line 2 at byte {offset}"):
        list(iter_local_documents(tmp_path / "bad.jsonl"))


def test_bad_paths(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        iter_local_documents(tmp_path / "missing")
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(CorpusError, match="not a supported corpus file"):
        iter_local_documents(tmp_path / "notes.md")
    with pytest.raises(CorpusError, match="holds no corpus files"):
        iter_local_documents(tmp_path)
    (tmp_path / "fake.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(CorpusError, match=r"fake\.jsonl\.gz: cannot read"):
        list(iter_local_documents(tmp_path / "fake.jsonl.gz"))
    with pytest.raises(ConfigError, match="max_samples"):
        iter_local_documents(tmp_path / "fake.jsonl.gz", max_samples=-1)


def test_file_identity(tmp_path, books):
    _write_jsonl(tmp_path / "b.jsonl", books)
    (tmp_path / "a.txt").write_text(books[0]["text"], encoding="utf-8")
    ident = file_identity(tmp_path)
    assert [f["path"] for f in ident["files"]] == ["a.txt", "b.jsonl"]
    data = (tmp_path / "b.jsonl").read_bytes()
    assert ident["files"][1] == {"path": "b.jsonl", "bytes": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}
    assert ident["total_bytes"] == sum(f["bytes"] for f in ident["files"])
    assert file_identity(tmp_path) == ident


def test_pydoc_corpus():
    docs = list(pydoc_corpus())
    assert len(docs) > 50 and all(d.text.strip() for d in docs)
    keys = [d.title for d in docs]
    assert keys == sorted(keys) and len({d.doc_id for d in docs}) == len(docs)


# -- Hugging Face datasets -----------------------------------------------------------------------------
def test_registry_is_the_notebooks():
    loader = StreamingDatasetLoader()
    assert loader.list_datasets() == ["c4", "redpajama_sample", "pile", "refinedweb", "dolma",
                                      "wikitext", "openwebtext", "bookcorpus", "simple_wiki"]
    info = loader.get_dataset_info("wikitext")
    assert (info["hf_id"], info["config"], info["text_field"]) == (
        "Salesforce/wikitext", "wikitext-103-raw-v1", "text")
    assert loader.get_dataset_info("refinedweb")["text_field"] == "content"
    assert loader.get_dataset_info("c4")["config"] == "en"
    assert loader.DATASETS is DATASETS


def test_unknown_dataset_key_lists_known_keys():
    with pytest.raises(ConfigError, match=r"unknown dataset key 'wiki'.*c4, redpajama_sample.*data=PATH in Python"):
        StreamingDatasetLoader().load_streaming("wiki")
    with pytest.raises(ConfigError, match="skip"):
        StreamingDatasetLoader().load_streaming("wikitext", skip=-1)


def test_offline_dataset_is_an_error_not_zero_samples():
    with pytest.raises(DatasetUnavailableError) as error:
        StreamingDatasetLoader().load_streaming("wikitext", max_samples=10)
    message = str(error.value)
    assert "'wikitext'" in message and "Salesforce/wikitext" in message and "--data PATH" in message


def test_unreachable_hub_fails_fast_without_offline_mode(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="did not answer"):
        StreamingDatasetLoader().load_streaming("c4")
    assert time.perf_counter() - start < 10


@pytest.fixture
def hf_rows(tmp_path, books):
    """A real streaming `datasets` IterableDataset (local json, offline), with empty rows."""
    import datasets

    rows = []
    for book in books:
        rows += [{"text": book["text"], "title": book["title"]}, {"text": "  ", "title": ""}]
    _write_jsonl(tmp_path / "rows.jsonl", rows)
    return datasets.load_dataset("json", data_files=str(tmp_path / "rows.jsonl"), split="train",
                                 streaming=True)


def test_stream_skips_and_counts_empty_rows(hf_rows, books):
    stream = DocumentStream("wikitext", DATASETS["wikitext"], hf_rows, None, 0)
    docs = list(stream)
    assert [d.text for d in docs] == [b["text"] for b in books]
    assert [d.doc_id for d in docs] == [f"wikitext#{2 * i}" for i in range(5)]
    assert (stream.rows_read, stream.empty_rows, stream.documents) == (10, 5, 5)
    assert docs[3].metadata["sample_idx"] == 3 and docs[3].metadata["title"] == books[3]["title"]


def test_stream_skip_counts_documents_so_resume_is_exact(hf_rows):
    spec = DATASETS["wikitext"]
    every = [d.doc_id for d in DocumentStream("wikitext", spec, hf_rows, None, 0)]
    first = [d.doc_id for d in DocumentStream("wikitext", spec, hf_rows, 2, 0)]
    rest = [d.doc_id for d in DocumentStream("wikitext", spec, hf_rows, None, 2)]
    assert first + rest == every and len(first) == 2
    assert [d.doc_id for d in DocumentStream("wikitext", spec, hf_rows, 0, 0)] == []


def test_stream_missing_field_names_dataset_and_row(hf_rows):
    stream = DocumentStream("refinedweb", DATASETS["refinedweb"], hf_rows, None, 0)
    with pytest.raises(CorpusError, match=r"dataset 'refinedweb' .*row 0: no field 'content'.*'text'"):
        list(stream)
