"""``DIR/report.html`` and its PNGs, from run summaries (one run, or two side by side).

Figures are drawn with matplotlib's object API (``Figure`` + the Agg canvas ``savefig`` picks),
never pyplot, so a report needs no display and leaves no global figure state. Files:

- ``overview.png``: patterns and total frequency per level, one bar per run;
- ``<run>-<node>.png``: per level, the frequency histogram, the rank-frequency staircase with its
  fitted Zipf line, and the pattern-length distribution;
- ``report.html``: the run table, per level the numbers (patterns, total frequency, Zipf exponent,
  reuse rate, size on disk), the figures and the most frequent patterns decoded to text.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Sequence

from katoray.analysis.frequencies import rank_frequency
from katoray.analysis.summary import LevelSummary, RunSummary, shortened

REPORT_FILE = "report.html"
DPI = 100
COLORS = ("#1f77b4", "#d62728")   # run A, run B
ZIPF_METHOD = ("Zipf exponent s: least-squares line through (log10 rank, log10 frequency) at the first rank of "
               "each distinct frequency, f(r) ≈ C·r^−s (ties share a run of ranks; one point per run keeps the long "
               "tail of frequency-1 patterns from outweighing the rest).")
_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f3f7}td.text{text-align:left;max-width:60em;font-family:Georgia,serif}
.runs{display:flex;gap:16px;flex-wrap:wrap}.runs>div{flex:1;min-width:420px}img{max-width:100%}
h2{border-bottom:2px solid #1f77b4;padding-bottom:4px}.note{color:#8a4b00}"""


def write_report(runs: Sequence[RunSummary], out_dir: str | Path) -> Path:
    """Write the report of one run (or two, compared) into ``out_dir``; returns report.html's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {"overview": _overview_figure(runs, out / "overview.png")}
    for run in runs:
        for level in run.levels:
            images[(run.run_id, level.node)] = _level_figure(run.run_id, level, out / f"{_slug(run.run_id)}-{_slug(level.node)}.png")
    path = out / REPORT_FILE
    path.write_text(_html(runs, images), encoding="utf-8")
    return path


# -- figures ---------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure   # lazy: matplotlib only when a report is drawn

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _overview_figure(runs: Sequence[RunSummary], path: Path) -> str:
    fig = _figure(10, 3.6)
    axes = fig.subplots(1, 2)
    width = 0.8 / len(runs)
    for k, run in enumerate(runs):
        xs = [i + (k - (len(runs) - 1) / 2) * width for i in range(len(run.levels))]
        axes[0].bar(xs, [lv.patterns for lv in run.levels], width, color=COLORS[k], label=run.run_id)
        axes[1].bar(xs, [lv.total_frequency for lv in run.levels], width, color=COLORS[k], label=run.run_id)
    nodes = max((run.levels for run in runs), key=len)
    for ax, title in zip(axes, ("distinct patterns per level", "total frequency (learn events) per level")):
        ax.set_xticks(range(len(nodes)), [lv.node for lv in nodes])
        ax.set_title(title)
        ax.legend()
    fig.savefig(path)
    return path.name


def _level_figure(run_id: str, level: LevelSummary, path: Path) -> str:
    fig = _figure(12, 3.4)
    hist_ax, rank_ax, length_ax = fig.subplots(1, 3)
    fig.suptitle(f"{run_id} · {level.node}: {level.patterns:,} patterns")
    if level.frequency_histogram:
        hist_ax.scatter(list(level.frequency_histogram), list(level.frequency_histogram.values()), s=8)
        hist_ax.set_xscale("log")
        hist_ax.set_yscale("log")
        points = rank_frequency(level.frequency_histogram)
        ranks = [r for r, _ in points] + [level.patterns]
        freqs = [f for _, f in points]
        rank_ax.stairs(freqs, ranks, baseline=None, label="patterns")
        rank_ax.set_xscale("log")
        rank_ax.set_yscale("log")
        if level.zipf is not None:
            ends = [1, level.patterns]
            rank_ax.plot(ends, [10 ** level.zipf.intercept * r ** -level.zipf.exponent for r in ends], "--",
                         color=COLORS[1], label=f"fit s = {level.zipf.exponent:.2f}")
        rank_ax.legend()
        counts = list(level.length_histogram.values())
        length_ax.bar(list(level.length_histogram), counts)
        if max(counts) > 100 * min(counts):   # remainders at document ends are few beside full chunks
            length_ax.set_yscale("log")
        length_ax.xaxis.get_major_locator().set_params(integer=True)   # lengths are whole symbols
    for ax, title, xlabel, ylabel in ((hist_ax, "frequency histogram", "frequency", "patterns"),
                                      (rank_ax, "rank-frequency", "rank", "frequency"),
                                      (length_ax, "pattern length", "symbols per pattern", "patterns")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.savefig(path)
    return path.name


# -- HTML ------------------------------------------------------------------------------------------
def _html(runs: Sequence[RunSummary], images: dict) -> str:
    title = " vs ".join(run.run_id for run in runs)
    body = [f"<h1>katoray report: {_e(title)}</h1>", _run_table(runs), "".join(_notes(run) for run in runs),
            f'<img src="{_e(images["overview"])}" alt="patterns and frequency per level">',
            f"<p>{_e(ZIPF_METHOD)}</p>"]
    nodes = list(dict.fromkeys(lv.node for run in runs for lv in run.levels))
    for node in nodes:
        body.append(f"<h2>{_e(node)}</h2>")
        body.append(_level_table(runs, node))
        columns = [_level_column(run, lv, images) for run in runs for lv in run.levels if lv.node == node]
        body.append(f'<div class="runs">{"".join(columns)}</div>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>katoray report: {_e(title)}'
            f"</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _run_table(runs: Sequence[RunSummary]) -> str:
    keys = ("status", "documents", "tokens", "chunk_sizes", "mode", "tokenizer", "store", "started", "finished")
    head = "".join(f"<th>{_e(run.run_id)}</th>" for run in runs)
    rows = "".join(f"<tr><th>{key}</th>{''.join(f'<td>{_cell(run.info.get(key))}</td>' for run in runs)}</tr>"
                   for key in keys)
    return f"<table><tr><th>run</th>{head}</tr>{rows}</table>"


def _notes(run: RunSummary) -> str:
    return "".join(f'<p class="note">{_e(run.run_id)}: {_e(note)}</p>' for note in run.notes)


def _level_table(runs: Sequence[RunSummary], node: str) -> str:
    rows = [("patterns", lambda lv: f"{lv.patterns:,}"), ("total frequency", lambda lv: f"{lv.total_frequency:,}"),
            ("mean frequency", lambda lv: f"{lv.total_frequency / lv.patterns:.2f}" if lv.patterns else "–"),
            ("Zipf exponent s", lambda lv: f"{lv.zipf.exponent:.3f} ({lv.zipf.num_points} points)" if lv.zipf else "–"),
            ("reuse rate", lambda lv: f"{lv.reuse_rate:.1%}" if lv.reuse_rate is not None else "not recorded"),
            ("size on disk", lambda lv: _bytes(lv.size_on_disk))]
    levels = [next((lv for lv in run.levels if lv.node == node), None) for run in runs]
    head = "".join(f"<th>{_e(run.run_id)}</th>" for run in runs)
    body = "".join(f"<tr><th>{label}</th>{''.join(_td(show, lv) for lv in levels)}</tr>" for label, show in rows)
    return f"<table><tr><th>{_e(node)}</th>{head}</tr>{body}</table>"


def _td(show, level: LevelSummary | None) -> str:
    return f"<td>{_e(show(level)) if level is not None else '–'}</td>"


def _level_column(run: RunSummary, level: LevelSummary, images: dict) -> str:
    image = images[(run.run_id, level.node)]
    rows = "".join(f"<tr><td>{i}</td><td>{p.frequency:,}</td><td>{p.length}</td>"
                   f'<td class="text">{_e(shortened(p.text))}</td></tr>' for i, p in enumerate(level.top, 1))
    return (f"<div><h3>{_e(run.run_id)}</h3>"
            f'<img src="{_e(image)}" alt="{_e(run.run_id)} {_e(level.node)} frequency, rank and length plots">'
            f"<table><tr><th>#</th><th>frequency</th><th>length</th><th>text (decoded from node0 tokens)</th></tr>"
            f"{rows}</table></div>")


def _bytes(size: int | None) -> str:
    if size is None:
        return "in memory"
    return f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{size / 2**10:,.1f} KiB"


def _cell(value) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return _e(",".join(map(str, value)))
    return _e("–" if value is None else str(value))


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)
