"""This machine: cores, memory, and how many tokens per second it actually processes.

kato-lm multiplied a hard-coded 44 samples/s by a tier factor; here the rate is measured by
tokenizing real text (Python's own documentation, see ``pydoc_corpus``) on this machine, or by
timing any per-document callable, e.g. the hierarchy's map once it is built.
"""
from __future__ import annotations

import logging
import os
import platform
import time
from typing import Any, Callable, Sequence

from katoray.errors import ConfigError
from katoray.text.corpora import DATASETS, pydoc_corpus
from katoray.text.segment import Document
from katoray.text.tokenizers import TextTokenizer, load_tokenizer

log = logging.getLogger(__name__)

# (tier, minimum cores, minimum GB of memory): kato-lm's tiers, best first.
TIERS = (("server", 32, 128), ("high", 16, 64), ("medium", 8, 16))

MINUTE, HOUR, DAY = 60, 3600, 86400
DEFAULT_TIME_BUDGETS = (5 * MINUTE, 30 * MINUTE, 2 * HOUR, 6 * HOUR, DAY, 7 * DAY)

# Datasets from small to large; a budget gets the first one it does not exhaust.
DATASET_LADDER = ("wikitext", "openwebtext", "c4", "refinedweb")

# ASSUMED GPT-2 tokens per sample (dataset row), order of magnitude only: published corpus token
# counts divided by row counts, except wikitext, where kato-lm measured about 100 per row.
TOKENS_PER_SAMPLE = {
    "wikitext": 100,             # a row is a line or a paragraph
    "openwebtext": 1_100,        # ~9B tokens / 8.0M documents
    "c4": 430,                   # ~156B tokens / 365M documents
    "refinedweb": 620,           # ~600B tokens / 968M documents
    "redpajama_sample": 1_000,   # ~1B tokens / ~1M documents
    "pile": 1_400,               # ~300B tokens / 210M documents
    "dolma": 1_000,              # ~3T tokens / 3B documents
    "bookcorpus": 17,            # ~74M rows that are single sentences
    "simple_wiki": 250,          # short Simple English articles
}


class HardwareAnalyzer:
    """Cores, memory, tier, and a measured processing rate for this machine."""

    def __init__(self) -> None:
        self.cpu = _cpu_name()
        self.cores = _usable_cores()
        self.memory_gb = _memory_gb()
        self.tier = tier_for(self.cores, self.memory_gb)

    def measure_throughput(self, tokenizer: TextTokenizer | str | None = None,
                           seconds: float = 1.0,
                           per_document: Callable[[Document], Any] | None = None) -> float:
        """Tokens per second, measured for about ``seconds`` on Python's documentation.

        Without ``per_document``, what is timed is the tokenizer itself over the corpus
        (``tokenize_batch_direct``: the passes repeat the same text, which katoray's per-word
        cache would answer from memory after the first, overstating the rate on new text).
        With it, each ``per_document(doc)`` call is timed instead, and a document counts as
        the number of pieces ``tokenizer`` gives it (counted outside the timing).
        """
        if not seconds > 0:
            raise ConfigError(f"seconds must be > 0, got {seconds!r}")
        if not isinstance(tokenizer, TextTokenizer):
            tokenizer = load_tokenizer(tokenizer)
        documents = list(pydoc_corpus())
        if per_document is None:
            return _time_tokenize(tokenizer, [d.text for d in documents], seconds)
        return _time_per_document(tokenizer, documents, per_document, seconds)

    def display_hardware_info(self, tokens_per_sec: float | None = None) -> dict[str, Any]:
        """{cpu, cores, memory_gb, tier, tokens_per_sec}; the rate is measured unless given."""
        rate = self.measure_throughput() if tokens_per_sec is None else tokens_per_sec
        info = {"cpu": self.cpu, "cores": self.cores, "memory_gb": self.memory_gb,
                "tier": self.tier, "tokens_per_sec": rate}
        log.info("hardware: %s, %d cores, %.1f GB, tier %s, %.0f tokens/s",
                 self.cpu, self.cores, self.memory_gb, self.tier, rate)
        return info


def tier_for(cores: int, memory_gb: float) -> str:
    for tier, min_cores, min_gb in TIERS:
        if cores >= min_cores and memory_gb >= min_gb:
            return tier
    return "low"


def _time_tokenize(tokenizer: TextTokenizer, texts: list[str], seconds: float) -> float:
    tokens, start = 0, time.perf_counter()
    while True:
        tokens += sum(len(pieces) for pieces in tokenizer.tokenize_batch_direct(texts))
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return tokens / elapsed


def _time_per_document(tokenizer: TextTokenizer, documents: list[Document],
                       per_document: Callable[[Document], Any], seconds: float) -> float:
    counts = [len(pieces) for pieces in tokenizer.tokenize_batch([d.text for d in documents])]
    tokens, timed, index = 0, 0.0, 0
    while timed < seconds:
        document = documents[index % len(documents)]
        start = time.perf_counter()
        per_document(document)
        timed += time.perf_counter() - start
        tokens += counts[index % len(documents)]
        index += 1
    return tokens / timed


def recommend_dataset_configuration(time_budgets: Sequence[float] = DEFAULT_TIME_BUDGETS,
                                    tokens_per_sec: float | None = None) -> list[dict[str, Any]]:
    """For each time budget (seconds): which dataset and how many samples fit in it.

    samples = budget x tokens_per_sec / TOKENS_PER_SAMPLE[dataset] (an assumption per dataset,
    stated in TOKENS_PER_SAMPLE), taking the first dataset of DATASET_LADDER that holds that
    many samples (the largest one, whole, if none does). ``tokens_per_sec`` defaults to this
    machine's measured tokenization rate; pass the rate of the full training map for a truer
    figure. The rows are logged; ``format_recommendations`` makes a table of them.
    """
    rate = HardwareAnalyzer().measure_throughput() if tokens_per_sec is None else tokens_per_sec
    if not rate > 0:
        raise ConfigError(f"tokens_per_sec must be > 0, got {tokens_per_sec!r}")
    rows = [_recommend(float(budget), rate) for budget in time_budgets]
    log.info("dataset recommendations at %.0f tokens/s:\n%s", rate, format_recommendations(rows))
    return rows


def _recommend(budget: float, rate: float) -> dict[str, Any]:
    if not budget > 0:
        raise ConfigError(f"time budgets must be > 0 seconds, got {budget!r}")
    for key in DATASET_LADDER:
        samples = max(1, int(budget * rate / TOKENS_PER_SAMPLE[key]))
        if samples <= DATASETS[key].est_samples:
            break
    else:
        samples = DATASETS[key].est_samples
    tokens = samples * TOKENS_PER_SAMPLE[key]
    return {"budget_seconds": budget, "budget": format_time(budget), "dataset": key,
            "samples": samples, "tokens": tokens, "est_seconds": tokens / rate,
            "tokens_per_sample": TOKENS_PER_SAMPLE[key]}


def format_recommendations(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'budget':>10}  {'dataset':<12} {'samples':>14} {'tokens':>16} {'time':>10}"]
    lines += [f"{r['budget']:>10}  {r['dataset']:<12} {r['samples']:>14,} {r['tokens']:>16,} "
              f"{format_time(r['est_seconds']):>10}" for r in rows]
    return "\n".join(lines)


def format_time(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):      # Linux: the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:                            # not Linux: fall back to what platform knows
        pass
    return platform.processor() or platform.machine()
