"""The seed notebook runs as written, on the default store, with only what an offline user changes.

The notebook (``../shared/seed``) is kato-lm's. Its code cells run here in one namespace, in
order, with these changes and no others: ``from tools import`` -> ``from katoray import``; the
tokenizer is GPT-2's local folder; ``DATASET_KEY`` is a local corpus (ten KJV books) instead of
'wikitext'; the nodes' ``base_url`` (a KATO server) is dropped, so the embedded default store
(SQLite in ./runs) serves them; the commented-out cleanup and prediction cells are enabled; the
helper and ``tokenizer`` cells run right after training (the notebook uses them before it defines
them), and cleanup runs last. IPython's ``!`` and ``%`` lines are shell and magic, not Python.
"""
from __future__ import annotations

import contextlib
import io
import re

import matplotlib.pyplot as plt   # with no display, pyplot draws with Agg
import pytest

from katoray.text.corpora import iter_local_documents
from tests.conftest import GPT2_DIR, SHARED

SEED = SHARED / "seed" / "000_cec001daf758c914.txt"
CELL = "In [None]:"
_MARKDOWN = re.compile(r"^(##|\*\*|In \[None\]:)")   # code comments are '# ': headings are '## '


def code_cells(text: str) -> list[str]:
    """The notebook's code cells: from each ``In [None]:`` to the blank line before markdown."""
    cells, lines = [], text.splitlines()
    for start, line in enumerate(lines):
        if line.strip() != CELL:
            continue
        body, i = [], start + 1
        while i < len(lines) and not (lines[i].strip() == "" and i + 1 < len(lines) and _MARKDOWN.match(lines[i + 1])):
            if lines[i].strip() == CELL:
                break
            body.append(lines[i])
            i += 1
        cells.append("\n".join(body))
    return cells


def offline(cell: str, corpus: str) -> str:
    """The changes an offline user makes (module docstring), and nothing else."""
    cell = "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("!", "%")))
    cell = cell.replace("from tools import", "from katoray import")
    cell = cell.replace("tokenizer_name='gpt2'", f"tokenizer_name={str(GPT2_DIR)!r}")
    cell = cell.replace("DATASET_KEY = 'wikitext'", f"DATASET_KEY = {corpus!r}")
    return cell.replace(", base_url='http://kato:8000'", "")


def enabled(cell: str) -> str:
    """A commented-out cell with its code uncommented (from its first '# #' line on)."""
    lines, on = [], False
    for line in cell.splitlines():
        on = on or line.startswith("# #")
        lines.append(line[2:] if on and line.startswith("# ") else line[1:] if on and line == "#" else line)
    return "\n".join(lines)


def run_order(cells: list[str]) -> list[str]:
    def index(marker: str) -> int:
        found = [i for i, cell in enumerate(cells) if marker in cell]
        assert len(found) == 1, f"{marker!r} is in {len(found)} cells of the notebook"
        return found[0]

    train = index("train_from_streaming_dataset_parallel(")
    helper, sentences = index("def sample_pattern_by_frequency"), index("AutoTokenizer.from_pretrained")
    cleanup, predictions = index("cleanup_all_nodes(learner"), index("get_predictions()")
    cells = list(cells)
    cells[cleanup], cells[predictions] = enabled(cells[cleanup]), enabled(cells[predictions])
    order = list(range(train + 1)) + [helper, sentences]
    order += [i for i in range(train + 1, len(cells)) if i not in (helper, sentences, cleanup)] + [cleanup]
    return [cells[i] for i in order]


@pytest.mark.ray
def test_the_seed_notebook_runs_as_written(ray_session, ten_books, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                  # the default store and runs folder: ./runs
    cells = run_order([offline(cell, str(ten_books)) for cell in code_cells(SEED.read_text(encoding="utf-8"))])
    assert len(cells) == 15
    namespace: dict = {"__name__": "__notebook__"}
    printed = []
    for number, cell in enumerate(cells):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(cell, f"<notebook cell {number}>", "exec"), namespace)   # noqa: S102 (the notebook itself)
        printed.append(out.getvalue())
        plt.close("all")
    everything = "\n".join(printed)
    text = " ".join(" ".join(doc.text.split()) for doc in iter_local_documents(ten_books))

    # The generation cells printed decoded corpus text: node1's paragraph and node0's sentences.
    paragraph_cell = next(out for out in printed if "GENERATED PARAGRAPH (combined):" in out)
    paragraph = paragraph_cell.split("GENERATED PARAGRAPH (combined):")[1].split("=" * 60)[1].strip()
    assert paragraph and all(" ".join(part.split()) in text for part in _bullets(paragraph_cell))
    sentence_cell = next(out for out in printed if "GENERATING SENTENCES FROM NODE0" in out)
    listed = sentence_cell.split("Generated Sentences:\n", 1)[1]
    listed = listed[:listed.rindex("\n", 0, listed.rindex("Generated 5 sentences from learned patterns"))]
    sentences = _numbered(listed, 5)
    assert all(" ".join(s.split()) in text for s in sentences), sentences
    # The run has its manifest, its analyzers see what the learner sees, and cleanup ran.
    manifest = namespace["load_latest_manifest"]()
    learner = namespace["learner"]
    assert manifest.run_id == learner.run_id
    assert "Total patterns deleted across all nodes:" in everything
    summary = next(out for out in printed if "HIERARCHICAL TRAINING SESSION SUMMARY" in out)
    assert re.search(r"node0: [\d,]+ patterns \(avg freq: [\d.]+\)", summary), summary


def _numbered(printed: str, count: int) -> list[str]:
    """The texts printed as ``1. <text>`` .. ``count. <text>``, each up to the next number. A
    sampled pattern may decode to text holding or starting with a newline (GPT-2 has newline
    tokens), so an item is not one line."""
    starts = []
    for number in range(1, count + 1):
        found = re.compile(rf"^{number}\. ", re.M).search(printed, starts[-1][1] if starts else 0)
        assert found, f"item {number} is missing from {printed!r}"
        starts.append((found.start(), found.end()))
    ends = [start for start, _ in starts[1:]] + [len(printed)]
    return [printed[begin:end] for (_, begin), end in zip(starts, ends)]


def _bullets(printed: str) -> list[str]:
    return [line.split("• ", 1)[1] for line in printed.splitlines() if "• " in line]
