"""MongoStore against a real wire-protocol server (SecantusDB in-process, or $MONGO_URI).

What is pinned here and not by the generic congruence suite: KATO's MongoDB-era layout, bulk-only
writes (a constant number of write commands per apply), exactly-once after a crash at any point
of an apply, and connection failures that are fast and never show the password.
"""
from __future__ import annotations

import re
import time
import traceback
import uuid

import pymongo
import pytest
from pymongo import monitoring

from katoray.engine.naming import pattern_hash
from katoray.errors import ConfigError, StoreError, StoreUnreachableError
from katoray.store import kb_id_for, open_store
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore
from katoray.store.mongo import MongoStore
from tests.net import free_port

pytestmark = pytest.mark.mongo

SHA1 = re.compile(r"^[0-9a-f]{40}$")


def delta(events, count=1, emotives=(), metadata=None) -> PatternDelta:
    events = [list(e) for e in events]
    return PatternDelta(pattern_hash(events), events, count, [dict(e) for e in emotives],
                        {k: list(v) for k, v in (metadata or {}).items()})


def chain(*symbols):
    """One symbol per event, as the chunking hierarchy learns."""
    return [[s] for s in symbols]


# Three batches that share patterns and symbols: repeats inside a batch, re-learns across
# batches, emotive windows longer than persistence, metadata unions and multi-symbol events.
PRIOR = [
    delta(chain("a", "b", "c"), metadata={"book": ["t2"]}),
    delta([["a", "b"], ["c"]], emotives=[{"joy": 0.5}]),
    delta(chain("x", "y"), count=2),
]
BATCH = [
    delta(chain("a", "b", "c"), emotives=[{"joy": 1.0}, {"fear": 0.25}], metadata={"book": ["t1", "t3"]}),
    delta(chain("b", "d")),
    delta(chain("a", "b", "c"), count=3, emotives=[{"joy": 2}, {"joy": 3}, {"joy": 4}],
          metadata={"book": ["t0"], "author": ["Smith"]}),
    delta([["a", "b"], ["c"]], metadata={"book": ["t9"]}),
    delta(chain("e", "a", "e")),
    delta(chain("b", "d"), count=2, emotives=[{"calm": -1.5}]),
    delta([["q"], ["a", "z"]], metadata={"empty": []}),
]
FOLLOW = [
    delta(chain("b", "d"), metadata={"book": ["t5"]}),
    delta(chain("e", "a", "e"), count=4, emotives=[{"joy": 7}]),
    delta(chain("y", "x")),
]
SYMBOLS = ["a", "b", "c", "d", "e", "q", "x", "y", "z", "never"]


def observable(store):
    """Everything the protocol lets a reader see, for whole-state comparisons."""
    names = [d.name for d in PRIOR + BATCH + FOLLOW]
    return {
        "patterns": list(store.iter_patterns()),
        "get_patterns": store.get_patterns(names + ["0" * 40]),
        "totals": store.totals(),
        "count": store.count(),
        "pmf": store.symbol_pmf(SYMBOLS),
        "freq": store.symbol_frequencies(SYMBOLS),
        "with_any": {s: store.patterns_with_any([s, "never"]) for s in SYMBOLS},
        "starting": {s: store.patterns_starting_with(s) for s in SYMBOLS},
    }


def reference(batches, **options):
    memory = MemoryStore()
    for batch_id, deltas in batches:
        memory.apply(deltas, batch_id, **options)
    return observable(memory)


@pytest.fixture(scope="module")
def client(mongo_uri):
    c = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    yield c
    c.close()


@pytest.fixture
def kb_id(client):
    kb_id = kb_id_for(f"t{uuid.uuid4().hex[:10]}")
    yield kb_id
    client.drop_database(kb_id)


@pytest.fixture
def store(mongo_uri, kb_id):
    s = MongoStore.from_url(mongo_uri, kb_id)
    yield s
    s.close()


# -- layout ---------------------------------------------------------------------------------------
def test_layout_is_katos_mongodb_era(store, client, kb_id, mongo_uri):
    opened = open_store(mongo_uri, kb_id)
    assert isinstance(opened, MongoStore)
    opened.close()
    store.apply(PRIOR + BATCH, "b1", persistence=3)
    db = client[kb_id]
    assert {"patterns_kb", "symbols_kb", "metadata", "applied_batches"} <= set(db.list_collection_names())
    unique = {tuple(spec["key"]) for spec in db["patterns_kb"].index_information().values() if spec.get("unique")}
    assert (("name", 1),) in unique
    name = pattern_hash(chain("a", "b", "c"))
    doc = db["patterns_kb"].find_one({"name": name})
    assert SHA1.match(doc["name"])
    assert doc["pattern_data"] == [["a"], ["b"], ["c"]]
    assert (doc["length"], doc["frequency"]) == (3, 5)
    assert doc["emotives"] == [{"joy": 2}, {"joy": 3}, {"joy": 4}]
    assert sorted(doc["metadata"]["book"]) == ["t0", "t1", "t2", "t3"]
    assert doc["first_symbol"] == "a" and sorted(doc["symbols"]) == ["a", "b", "c"]
    assert all(SHA1.match(d["name"]) for d in db["patterns_kb"].find({}, {"name": 1}))
    totals = db["metadata"].find_one({"class": "totals"})
    assert totals["total_unique_patterns"] == 6 and totals["num_symbols"] == 9
    assert db["symbols_kb"].find_one({"name": "a"})["pmf"] == 4
    assert db["applied_batches"].find_one({"_id": "b1"})["done"] is True


def test_invalid_kb_id_is_refused(mongo_uri):
    with pytest.raises(ConfigError, match="kb_id 'node0.kato'"):
        MongoStore.from_url(mongo_uri, "node0.kato")


# -- same answers as MemoryStore --------------------------------------------------------------------
@pytest.mark.parametrize("cap", [None, 2])
def test_same_state_as_memory_store(store, cap):
    batches = [("b0", PRIOR), (None, BATCH), ("b2", FOLLOW)]
    for batch_id, deltas in batches:
        assert store.apply(deltas, batch_id, persistence=3, metadata_cap=cap) is True
    assert store.apply(FOLLOW, "b2", persistence=3, metadata_cap=cap) is False
    assert store.is_applied("b0") and store.is_applied("b2") and not store.is_applied("b1")
    assert observable(store) == reference(batches, persistence=3, metadata_cap=cap)


def test_clear_empties_and_store_stays_usable(store, client, kb_id):
    store.apply(PRIOR, "b0")
    store.clear()
    assert kb_id not in client.list_database_names()
    assert observable(store) == reference([]) and not store.is_applied("b0")
    assert store.apply(PRIOR, "b0") is True
    assert observable(store) == reference([("b0", PRIOR)])


def test_bad_metadata_key_is_refused_before_any_write(store, client, kb_id):
    bad = [delta(chain("a", "b"), metadata={"a.b": ["x"]})]
    with pytest.raises(ValueError, match="metadata key 'a.b'"):
        store.apply(PRIOR + bad, "b0")
    assert client[kb_id]["patterns_kb"].count_documents({}) == 0 and not store.is_applied("b0")


# -- bulk writes only -------------------------------------------------------------------------------
class CommandLog(monitoring.CommandListener):
    def __init__(self, database):
        self.database, self.commands = database, []

    def started(self, event):
        if event.database_name == self.database:
            self.commands.append((event.command_name, event.command))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.mark.parametrize("size", [5, 60])
def test_writes_are_a_constant_number_of_bulk_commands(mongo_uri, kb_id, size):
    log = CommandLog(kb_id)
    store = MongoStore.from_url(mongo_uri, kb_id, event_listeners=[log])
    deltas = [delta(chain(f"s{i}", f"s{i + 1}", "shared")) for i in range(size)]
    deltas += deltas[:3]  # repeated names are merged before writing
    log.commands.clear()
    store.apply(deltas, "b1")
    writes = [(name, cmd) for name, cmd in log.commands if name in ("insert", "update", "delete", "findAndModify")]
    assert [name for name, _ in writes] == ["update"] * 5  # ledger, patterns, symbols, totals, ledger
    documents = sum(len(cmd["updates"]) for _, cmd in writes)
    assert documents == size + (size + 2) + 3  # one per distinct pattern and symbol, totals, ledger x2
    store.close()


# -- exactly once -----------------------------------------------------------------------------------
class SimulatedCrash(Exception):
    pass


class CrashingStore(MongoStore):
    """Dies after ``budget`` single-document write ops: the crashing bulk write lands only its first
    (``prefix``) or last (``suffix``) ops, as an unordered bulk write may."""

    budget: int | None = None
    mode = "prefix"
    ops_written = 0

    def _write(self, collection, ops, *, guarded=True):
        if self.budget is None or self.budget >= len(ops):
            self.budget = None if self.budget is None else self.budget - len(ops)
            self.ops_written += len(ops)
            return super()._write(collection, ops, guarded=guarded)
        landed = ops[:self.budget] if self.mode == "prefix" else ops[len(ops) - self.budget:]
        super()._write(collection, landed, guarded=guarded)
        raise SimulatedCrash(f"crashed after {len(landed)} of {len(ops)} ops")


@pytest.mark.parametrize("mode, cap", [("prefix", None), ("suffix", 2)])
def test_crash_anywhere_then_replay_equals_one_clean_apply(client, mongo_uri, mode, cap):
    options = {"persistence": 3, "metadata_cap": cap}
    expected = reference([("b0", PRIOR), ("b1", BATCH), ("b2", FOLLOW)], **options)
    hosts = mongo_uri.split("://", 1)[1].split("/", 1)[0]

    def fresh_store():
        s = CrashingStore(client, kb_id_for(f"t{uuid.uuid4().hex[:10]}"), hosts)
        s.apply(PRIOR, "b0", **options)
        return s

    probe = fresh_store()
    probe.ops_written = 0
    probe.apply(BATCH, "b1", **options)
    total = probe.ops_written
    client.drop_database(probe.kb_id)
    assert total == 2 + len({d.name for d in BATCH}) + 7 + 1  # ledger x2, patterns, symbols, totals
    for budget in range(total):
        store = fresh_store()
        store.budget, store.mode = budget, mode
        with pytest.raises(SimulatedCrash):
            store.apply(BATCH, "b1", **options)
        store.budget = None
        assert not store.is_applied("b1")
        assert store.apply(BATCH, "b1", **options) is True, budget
        assert store.apply(BATCH, "b1", **options) is False
        store.apply(FOLLOW, "b2", **options)
        assert observable(store) == expected, f"crash after {budget} ops ({mode})"
        client.drop_database(store.kb_id)


@pytest.mark.parametrize("mode", ["prefix", "suffix"])
def test_another_batch_rolls_the_interrupted_one_forward_first(client, mongo_uri, mode):
    """After a crash anywhere in b1, the next batch to arrive is b2 (a resumed run re-sends batches
    in any order): b1 is finished from the deltas its ledger entry holds, then b2 is applied, and
    the re-sent b1 is recognised as done. A new store object (a restarted process) does the same."""
    expected = reference([("b0", PRIOR), ("b1", BATCH), ("b2", FOLLOW)], persistence=3, metadata_cap=2)
    hosts = mongo_uri.split("://", 1)[1].split("/", 1)[0]
    total = 2 + len({d.name for d in BATCH}) + 7 + 1
    for budget in range(1, total):       # budget 0: not even the ledger entry landed
        kb_id = kb_id_for(f"t{uuid.uuid4().hex[:10]}")
        store = CrashingStore(client, kb_id, hosts)
        store.apply(PRIOR, "b0", persistence=3, metadata_cap=2)
        store.budget, store.mode = budget, mode
        with pytest.raises(SimulatedCrash):
            store.apply(BATCH, "b1", persistence=3, metadata_cap=2)
        restarted = MongoStore(client, kb_id, hosts) if budget % 2 else store
        restarted.budget = None
        assert restarted.apply(FOLLOW, "b2", persistence=3, metadata_cap=2) is True
        assert restarted.is_applied("b1") and restarted.is_applied("b2")
        assert restarted.apply(BATCH, "b1", persistence=3, metadata_cap=2) is False
        assert observable(restarted) == expected, f"crash after {budget} ops ({mode})"
        assert list(client[kb_id]["applied_batches"].find({}, {"_id": 1, "done": 1}).sort("_id", 1)) == [
            {"_id": b, "done": True} for b in ("b0", "b1", "b2")]     # stored deltas dropped once done
        client.drop_database(kb_id)


def test_interrupted_batch_without_stored_deltas_is_refused(client, mongo_uri, kb_id):
    store = MongoStore.from_url(mongo_uri, kb_id)
    store.apply(PRIOR, "b0")
    client[kb_id]["applied_batches"].insert_one({"_id": "b1", "done": False})   # an older katoray's entry
    with pytest.raises(StoreError, match="batch 'b1' was interrupted.*no deltas.*before batch 'b2'"):
        store.apply(FOLLOW, "b2")
    assert not store.is_applied("b2")
    assert store.apply(BATCH, "b1") and store.apply(FOLLOW, "b2")
    assert observable(store) == reference([("b0", PRIOR), ("b1", BATCH), ("b2", FOLLOW)])
    store.close()


def test_batch_too_large_to_recover_is_refused_before_any_write(client, mongo_uri, kb_id, monkeypatch):
    from katoray.store import mongo_batch

    store = MongoStore.from_url(mongo_uri, kb_id)
    store.apply(PRIOR, "b0")
    before = observable(store)
    monkeypatch.setattr(mongo_batch, "MAX_RECOVERY_BYTES", 64)
    with pytest.raises(StoreError, match=r"batch 'b1' is too large.*smaller batches \(--batch-size"):
        store.apply(BATCH, "b1")
    assert observable(store) == before and not store.is_applied("b1")
    assert client[kb_id]["applied_batches"].count_documents({}) == 1
    store.close()


# -- connection failures and credentials ---------------------------------------------------------
def test_unreachable_server_fails_fast_naming_the_host_not_the_password():
    port = free_port()
    url = "mongodb://kato:" + "s3cr3t-pw" + f"@127.0.0.1:{port}/"  # the traceback shows this line's source
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError) as info:
        MongoStore.from_url(url, "node0_kato", timeout_s=1.0)
    assert time.monotonic() - started < 4.0
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "did not answer within 1 s" in message
    shown = "".join(traceback.format_exception(info.value))  # pymongo's own error is not chained
    assert "s3cr3t" not in shown and "ServerSelectionTimeoutError" in shown, shown


def test_credentials_never_shown(client, mongo_uri, kb_id):
    if "@" in mongo_uri:
        pytest.skip("MONGO_URI already carries credentials")
    password, wrong = "pa55-" + "w0rd", "wrong-" + "pa55"  # tracebacks show source lines, not values
    client.admin.command("createUser", "kb_user", pwd=password, roles=["root"])
    try:
        store = MongoStore.from_url(mongo_uri.replace("://", f"://kb_user:{password}@", 1), kb_id)
        assert password not in repr(store) and kb_id in repr(store)
        store.close()
        with pytest.raises(StoreError, match="refused the connection") as info:
            MongoStore.from_url(mongo_uri.replace("://", f"://kb_user:{wrong}@", 1), kb_id)
        assert wrong not in "".join(traceback.format_exception(info.value))
    finally:
        client.admin.command("dropUser", "kb_user")
