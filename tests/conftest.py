"""Shared fixtures: paths to ../shared, store URLs for every backend, one session-wide Ray, MongoDB.

Nothing here downloads anything: HF hub and datasets run offline for the whole test session.
"""
from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # read when ray is imported: set before any import
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # Ray forks; the Rust pool would warn and contend

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KJV_BOOKS = SHARED / "data" / "kjv" / "kjv_books.jsonl.gz"
KJV_VERSES = SHARED / "data" / "kjv" / "kjv_verses.txt.gz"
GPT2_DIR = SHARED / "tokenizers" / "gpt2"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: tests read real corpora and tokenizers from ../shared")
    return SHARED


@pytest.fixture(scope="session")
def gpt2_dir(shared_dir) -> Path:
    return GPT2_DIR


@pytest.fixture(scope="session")
def kjv_books_path(shared_dir) -> Path:
    return KJV_BOOKS


# -- corpora --------------------------------------------------------------------------------------
TEN_BOOKS = {"a.jsonl": ["Ruth", "Joel", "Obad", "Jonah"], "b.jsonl": ["Hag", "Phmn", "2Jn", "3Jn", "Jude"],
             "c.txt": ["Nahum"]}


@pytest.fixture(scope="session")
def ten_books(kjv_books_path, tmp_path_factory) -> Path:
    """Ten short KJV books in three files (two jsonl, one txt) of one folder."""
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as lines:
        books = {book["abbrev"]: book for book in map(json.loads, lines)}
    root = tmp_path_factory.mktemp("corpus")
    for name, abbrevs in TEN_BOOKS.items():
        if name.endswith(".txt"):
            (root / name).write_text(books[abbrevs[0]]["text"], encoding="utf-8")
        else:
            rows = [json.dumps({"title": books[a]["title"], "text": books[a]["text"]}) for a in abbrevs]
            (root / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


# -- MongoDB ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mongo_uri():
    """A real MongoDB wire-protocol server: $MONGO_URI if set, else SecantusDB in-process."""
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    from secantus import SecantusDBServer  # test-only dependency

    server = SecantusDBServer(port=0, storage_path=":memory:")
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


# -- stores -------------------------------------------------------------------------------------
BACKENDS = ["memory", "sqlite", "mongo"]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A store URL for each backend (same tests, same answers). Pair it with ``node_id``."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/kb"
    return request.getfixturevalue("mongo_uri")


@pytest.fixture
def node_id() -> str:
    """A node id no other test uses, so MongoDB databases never collide between tests."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kb(store_url, node_id):
    """An empty knowledge base on each backend, cleared afterwards."""
    from katoray.store import kb_id_for, open_store

    store = open_store(store_url, kb_id_for(node_id))
    yield store
    store.clear()
    store.close()


# -- Ray ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_session():
    """One private local Ray for the whole session (reference/ray-notes.md §1)."""
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    ctx = ray.init(address="local", num_cpus=4, include_dashboard=False,
                   object_store_memory=256 * 1024**2, logging_level="ERROR", log_to_driver=False)
    yield ctx
    ray.shutdown()
