"""``katoray analyze | export | import | cleanup`` on real runs (KJV, GPT-2, trained on Ray).

The report is checked in a real headless Chromium: every image loads and the page is not blank.
"""
from __future__ import annotations


import numpy as np
import pyarrow.parquet as pq
import pytest

from katoray.cli import main
from katoray.jobs import TrainConfig, delete_run, fingerprint, load_manifest, start_run
from tests.analysis.chromium import page_images, screenshot
from tests.jobs import GPT2, corpus

pytestmark = pytest.mark.ray
BOOKS_UNDER = 20_000     # 29 KJV books, ~70k GPT-2 tokens


@pytest.fixture(scope="module")
def runs_dir(ray_session, tmp_path_factory, kjv_books_path):
    """Two finished runs of the same books: ``short`` (chunks of 4) and ``long`` (chunks of 8)."""
    books = corpus(tmp_path_factory, kjv_books_path, BOOKS_UNDER)
    folder = tmp_path_factory.mktemp("runs")
    for run_id, size in (("short", 4), ("long", 8)):
        start_run(TrainConfig(data=str(books), tokenizer=str(GPT2), run_id=run_id, runs_dir=str(folder),
                              levels=3, chunk_sizes=(size,), verbose=False))
    return folder


def cli(capsys, *args) -> list[str]:
    capsys.readouterr()
    assert main([str(a) for a in args]) == 0
    return capsys.readouterr().out.splitlines()


def test_analyze_writes_a_report_chromium_shows(runs_dir, tmp_path, capsys):
    out = tmp_path / "report"
    lines = cli(capsys, "analyze", "short", "--compare", "long", "--runs-dir", runs_dir, "--out", out, "--top", 5)
    short0 = next(line for line in lines if line.startswith("short node0: "))
    assert "Zipf s " in short0 and lines[-1] == f"report: {out / 'report.html'}"
    images, dom = page_images(out / "report.html")
    assert len(images) == 1 + 2 * 3                               # overview + one per run per level
    assert all(complete and width > 0 for _, complete, width in images), images
    top = load_manifest("short", runs_dir).get_analyzers()["node0"].get_patterns_by_frequency(limit=1)[0]
    assert f"<td>{top['frequency']:,}</td>" in dom and "Zipf exponent s" in dom and "reuse rate" in dom
    assert "LORD" in dom                                           # decoded text, not token pieces
    shot = screenshot(out / "report.html", tmp_path / "shot.png")
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1280) and len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 50


def test_export_then_import_into_mongodb_keeps_the_fingerprint(runs_dir, tmp_path, capsys, mongo_uri):
    out = tmp_path / "export"
    lines = cli(capsys, "export", "long", "--runs-dir", runs_dir, "--out", out)
    source = fingerprint("long", runs_dir)
    assert lines[0] == f"node0: {source['node0']['patterns']:,} patterns -> {out / 'node0.parquet'}"
    table = pq.read_table(out / "node0.parquet")
    assert table.column_names == ["name", "pattern_data", "length", "frequency", "emotives", "metadata"]
    assert table.num_rows == source["node0"]["patterns"]
    assert sum(table.column("frequency").to_pylist()) == source["node0"]["total_frequency"]
    names = table.column("name").to_pylist()
    assert names == sorted(names)
    try:
        lines = cli(capsys, "import", out, "--run-id", "long-mongo", "--runs-dir", runs_dir, "--store", mongo_uri)
        assert lines[0].startswith("imported run long as long-mongo into mongodb://")
        assert fingerprint("long-mongo", runs_dir, mongo_uri) == source
        manifest = load_manifest("long-mongo", runs_dir)
        assert manifest.attempts[-1]["kind"] == "import" and manifest.attempts[-1]["from"] == str(out.resolve())
        assert manifest.statistics == load_manifest("long", runs_dir).statistics
        # Not only names and counts: every record (events, emotives, metadata) comes back the same.
        originals, copies = load_manifest("long", runs_dir).open_stores(), manifest.open_stores(mongo_uri)
        assert any(r.metadata for r in originals["node1"].iter_patterns())
        stores = [*originals.values(), *copies.values()]
        for node in originals:   # and the symbol statistics and totals the store rebuilt from them
            assert list(copies[node].iter_patterns()) == list(originals[node].iter_patterns())
            assert copies[node].totals() == originals[node].totals()
            symbols = [s for r in originals[node].most_frequent(50) for e in r.pattern_data for s in e]
            assert copies[node].symbol_pmf(symbols) == originals[node].symbol_pmf(symbols)
            assert copies[node].symbol_frequencies(symbols) == originals[node].symbol_frequencies(symbols)
        for kb in stores:
            kb.close()
    finally:
        delete_run("long-mongo", runs_dir, mongo_uri, confirm=False)


def test_import_refuses_a_taken_run_id_and_a_folder_that_is_no_export(runs_dir, tmp_path, capsys):
    assert main(["import", str(tmp_path), "--run-id", "x", "--runs-dir", str(runs_dir)]) == 2
    assert "is not a katoray export" in capsys.readouterr().err
    cli(capsys, "export", "long", "--runs-dir", runs_dir, "--out", tmp_path / "e")
    assert main(["import", str(tmp_path / "e"), "--run-id", "short", "--runs-dir", str(runs_dir)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cleanup_dry_run_then_real(runs_dir, tmp_path, capsys):
    cli(capsys, "export", "short", "--runs-dir", runs_dir, "--out", tmp_path / "e")
    cli(capsys, "import", tmp_path / "e", "--run-id", "short-clean", "--runs-dir", runs_dir)
    before = fingerprint("short-clean", runs_dir)
    dry = cli(capsys, "cleanup", "short-clean", "--threshold", 2, "--dry-run", "--runs-dir", runs_dir)
    assert fingerprint("short-clean", runs_dir) == before
    assert dry[0].startswith("node0: would delete ") and dry[-1].endswith("(dry run: nothing was deleted)")
    real = cli(capsys, "cleanup", "short-clean", "--threshold", 2, "--runs-dir", runs_dir)
    assert [line.replace("would delete", "deleted") for line in dry[:-1]] == real[:-1]
    after = fingerprint("short-clean", runs_dir)
    deleted = [int(line.split()[2].replace(",", "")) for line in real[:-1]]
    assert [before[n]["patterns"] - after[n]["patterns"] for n in ("node0", "node1", "node2")] == deleted
    assert 0 < deleted[0] < before["node0"]["patterns"]
