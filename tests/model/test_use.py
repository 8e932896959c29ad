"""Using a trained run end to end: ``katoray.open_run`` and ``katoray predict | generate | eval``
on a real run (GPT-2, short KJV books, trained once with ``start_run`` on the session's Ray)."""
from __future__ import annotations

import json

import pytest

import katoray
from katoray.errors import KatorayError
from katoray.hierarchy.mapping import chunk_levels
from katoray.jobs import RunNotFoundError
from katoray.text.segment import END_OF_DOCUMENT
from tests.jobs import katoray as run_cli
from tests.model import trained_run

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def run(ray_session, tmp_path_factory, kjv_books_path):
    return trained_run(tmp_path_factory, kjv_books_path)


@pytest.fixture(scope="module")
def hierarchy(run):
    runs_dir, run_id, _, _ = run
    with katoray.open_run(run_id, runs_dir=runs_dir) as h:
        yield h


@pytest.fixture(scope="module")
def first_document(hierarchy, run):
    """The first training document's token stream, as training tokenized it."""
    from katoray.text.corpora import iter_local_documents

    doc = next(iter_local_documents(run[2]))
    return doc, hierarchy.preparer.prepare([doc])[0].tokens()


# -- Python --------------------------------------------------------------------------------------------
def test_open_run_reads_the_manifest(hierarchy):
    stats = hierarchy.stats()
    assert stats["run_id"] == "use-run" and stats["chunk_sizes"] == [8, 8, 8, 8] and stats["mode"] == "chunking"
    assert [lv["level"] for lv in stats["levels"]] == [0, 1, 2, 3] and stats["levels"][0]["patterns"] > 1000
    with pytest.raises(RunNotFoundError, match="no-such-run"):
        katoray.open_run("no-such-run", runs_dir=hierarchy.manifest.run_dir.parent)


def test_predict_gives_katos_predictions_with_text(hierarchy):
    predictions = hierarchy.predict("And God said", top=3)
    assert 1 <= len(predictions) <= 3
    best = predictions[0]
    assert {"name", "frequency", "matches", "past", "present", "future", "potential", "evidence", "confidence",
            "similarity", "snr", "fragmentation", "present_text", "future_text"} <= set(best)
    assert best["present_text"] == hierarchy.tokenizer.decode([s for e in best["present"] for s in e])
    assert [p["potential"] for p in predictions] == sorted((p["potential"] for p in predictions), reverse=True)
    with pytest.raises(KatorayError, match="level must be 0..3"):
        hierarchy.predict("x", level=4)


def test_present_plus_future_continue_the_text_without_repeating_it(hierarchy, first_document):
    """At level 1 the context's first three node0 patterns are the state: the training pattern's
    present is that text and its future the text that followed (no token twice at the boundary)."""
    _, stream = first_document
    context = stream[:24]                                   # three node0 chunks
    assert hierarchy.observed(context, 1) == [f"PTRN|{n}" for n in list(chunk_levels(stream, (8,)))[0][2][:3]]
    own = [p for p in hierarchy.predict(context, level=1) if p["matches"] == hierarchy.observed(context, 1)]
    first = next(p for p in own if p["future_text"] == hierarchy.tokenizer.decode(stream[24:64]))
    assert first["present_text"] == hierarchy.tokenizer.decode(context)
    assert first["present_text"] + first["future_text"] == hierarchy.decode(1, first["name"])


def test_next_tokens_and_decode(hierarchy, first_document):
    _, stream = first_document
    best = hierarchy.next_tokens(stream[:40], k=5)
    assert len(best) == 5 and [s for _, s in best] == sorted((s for _, s in best), reverse=True)
    assert stream[40] in [piece for piece, _ in best]      # a training context: its own next token is there
    assert hierarchy.next_tokens("And God said", k=3) == hierarchy.next_tokens(hierarchy.tokenize("And God said"), k=3)
    name = list(chunk_levels(stream, (8, 8)))[1][2][0]
    assert hierarchy.decode(1, name) == hierarchy.tokenizer.decode(stream[:64])


def test_generation_is_reproducible_with_a_seed(hierarchy):
    first = hierarchy.generate("And God said", max_tokens=30, seed=7)
    assert first == hierarchy.generate("And God said", max_tokens=30, seed=7) and first
    assert first != hierarchy.generate("And God said", max_tokens=30, seed=8)
    sampled = hierarchy.generate(max_tokens=50, seed=3, mode="sample", level=1)
    assert sampled == hierarchy.generate(max_tokens=50, seed=3, mode="sample", level=1)
    assert len(hierarchy.tokenize(sampled)) <= 52         # 50 pieces (their text may tokenize a little differently)
    with pytest.raises(KatorayError, match="temperature"):
        hierarchy.generate("x", temperature=0)


def test_greedy_generation_continues_a_training_text_without_repeating_it(hierarchy, first_document):
    """top_k=1 follows the decoder's best token each step; after a whole node0 pattern the levels
    above give the next chunk, not the pattern again (name + future would repeat the prompt)."""
    _, stream = first_document
    prompt = hierarchy.tokenizer.decode(stream[:16])
    text = hierarchy.generate(prompt, max_tokens=8, top_k=1, seed=0)
    continuation = hierarchy.tokenize(prompt + text)[16:]
    assert continuation[0] == hierarchy.next_tokens(stream[:16], k=1)[0][0]
    assert not text.startswith(hierarchy.tokenizer.decode(stream[8:16]))


def test_generation_stops_at_the_end_of_a_document(hierarchy, run):
    """Training learns each document's end as a symbol; where a book's last words predict it,
    greedy generation after them stops at once."""
    from katoray.text.corpora import iter_local_documents

    stopped = 0
    docs = list(iter_local_documents(run[2]))
    for doc, prepared in zip(docs, hierarchy.preparer.prepare(docs)):
        stream = prepared.tokens()
        assert stream[-1] == END_OF_DOCUMENT
        last_chunk = len(stream) % 8 or 8        # the end's node0 pattern (a state is matched inside one)
        if last_chunk < 5:
            continue                             # too few words before the end in its pattern to point at it
        context = stream[-last_chunk:-1]        # (common endings, "... Amen.", point elsewhere too)
        if hierarchy.next_tokens(context, k=1)[0][0] == END_OF_DOCUMENT:
            assert hierarchy.tokenize(doc.text) == stream[:-1]     # the whole book as the prompt
            assert hierarchy.generate(doc.text, max_tokens=50, top_k=1) == ""
            stopped += 1
    assert stopped >= 2


def test_sources_name_training_documents(hierarchy, run):
    spans = list(hierarchy.stream("And God said", max_tokens=20, seed=1, sources=True))
    titles = {json.loads(line)["title"] for line in run[2].read_text().splitlines()}
    assert spans and all(set(span.sources) <= titles for span in spans)
    assert any(span.sources for span in spans)


def test_attach_uses_the_live_node_actors(hierarchy, run):
    from katoray.runtime.node import start_nodes, stop_nodes

    runs_dir, run_id, _, _ = run
    m = hierarchy.manifest
    handles = start_nodes(run_id, m.store_url(), [m.nodes[f"node{i}"]["node_id"] for i in range(4)], [{}] * 4,
                          kb_ids=[m.nodes[f"node{i}"]["kb_id"] for i in range(4)])
    try:
        with katoray.open_run(run_id, runs_dir=runs_dir, attach=True) as live:
            assert live.predict("And God said", top=5) == hierarchy.predict("And God said", top=5)
            assert live.stats()["levels"] == hierarchy.stats()["levels"]
            assert live.next_tokens("And God said") == hierarchy.next_tokens("And God said")
    finally:
        stop_nodes(handles)


# -- the command line ------------------------------------------------------------------------------------
def test_cli_predict(run):
    runs_dir, run_id, _, _ = run
    result = run_cli("predict", run_id, "And God said", "--runs-dir", str(runs_dir), "--top", "2", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    predictions = json.loads(lines[-1])
    assert lines[0].startswith("run use-run · node0 · state of 3 symbols") and len(predictions) == 2
    assert "present " in lines[2] and predictions[0]["present_text"] in lines[2]


def test_cli_generate_is_reproducible(run):
    runs_dir, run_id, _, _ = run
    args = ("generate", run_id, "--prompt", "And God said", "--max-tokens", "20", "--seed", "5",
            "--runs-dir", str(runs_dir))
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout == second.stdout and first.stdout.startswith("And God said")
    sourced = run_cli(*args, "--show-sources")
    assert sourced.stdout.startswith(first.stdout) and "sources:" in sourced.stdout and " <- " in sourced.stdout
    sample = run_cli("generate", run_id, "--mode", "sample", "--level", "2", "--max-tokens", "30", "--seed", "1",
                     "--runs-dir", str(runs_dir))
    assert sample.returncode == 0 and sample.stdout.strip()
    bad = run_cli("generate", run_id, "--temperature", "0", "--runs-dir", str(runs_dir))
    assert bad.returncode == 2 and "temperature must be a number > 0" in bad.stderr


def test_cli_eval(run):
    runs_dir, run_id, _, held_out = run
    result = run_cli("eval", run_id, "--data", str(held_out), "--positions", "50", "--seed", "1",
                     "--runs-dir", str(runs_dir), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.splitlines()[-1])
    assert set(figures) == {"positions", "katoray", "unigram", "infinigram", "levels"} and figures["positions"] == 50
    assert set(figures["katoray"]) == set(figures["infinigram"]) == {"top1", "top5", "ms"}
    assert [lv["level"] for lv in figures["levels"]] == [0, 1, 2, 3]
    assert "katoray" in result.stdout and "coverage: node0" in result.stdout
