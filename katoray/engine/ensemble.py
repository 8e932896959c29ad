"""KATO's ensemble over the kept candidates (spec §4.3, §4.6): every prediction field and metric,
the ranking, and the future potentials.

KATO builds every field of all K kept candidates (K = 3·max_predictions) before it ranks them and
returns ``max_predictions``. Here every candidate first gets what the ranking and the ensemble's
sums read (``prediction.candidate_summary``: matches, missing, present, future, frequency,
similarity, evidence, confidence, snr, fragmentation; then the itfdf similarity, predictive
information, Bayesian fields and potential), computed by the same functions in the same order,
so with the same floats. The rest of a prediction (past, extras, sequence, emotives, entropies,
confluence, tfidf) depends on the candidate alone, so it is built only for the predictions
returned, unless ``rank_sort_algo`` ranks by one of those fields (then for every candidate).
Ties in the ranking go to the smaller name.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from katoray.engine import metrics
from katoray.engine.candidates import Scored
from katoray.engine.config import SessionConfig
from katoray.engine.emotives import average_emotives
from katoray.engine.matching import Extraction, index_state
from katoray.engine.prediction import build_candidate, candidate_summary
from katoray.store.base import KBTotals, KnowledgeBase, PatternRecord

# (flat symbols, state, config, state positions) -> (extraction, anomalies)
Extract = Callable[[list[str], list[str], SessionConfig, dict], tuple[Extraction, list[dict]]]


class _Candidate(NamedTuple):
    scored: Scored
    record: PatternRecord
    length: int               # symbols in the flattened events
    extraction: Extraction
    anomalies: list[dict]
    summary: dict             # candidate_summary, then the ensemble fields


def ensemble(kb: KnowledgeBase, stm: list[list[str]], state: list[str], config: SessionConfig,
             kept: list[Scored], pruned: bool, extract: Extract) -> tuple[list[dict], list[dict]]:
    """(ranked predictions, future potentials) of the kept candidates, in pruning order."""
    candidates = _candidates(kb, state, config, kept, extract)
    if not candidates:
        return [], []
    summaries = [c.summary for c in candidates]
    totals = kb.totals()
    scores = metrics.present_scores(summaries, state, totals, kb.symbol_pmf)
    for summary, itfdf in zip(summaries, scores.itfdf):
        summary["itfdf_similarity"] = itfdf
    future_potentials = metrics.predictive_information(summaries)
    metrics.bayesian(summaries)
    for summary in summaries:
        summary["potential"] = metrics.potential(summary)

    def prediction(i: int) -> dict:
        return _prediction(candidates[i], i, stm, len(state), pruned, scores, totals)

    key = config.rank_sort_algo
    if key in summaries[0]:
        chosen = sorted(range(len(summaries)), key=lambda i: (-summaries[i][key], summaries[i]["name"]))
        return [prediction(i) for i in chosen[:config.max_predictions]], future_potentials
    predictions = [prediction(i) for i in range(len(candidates))]
    return sorted(predictions, key=lambda p: (-p[key], p["name"]))[:config.max_predictions], future_potentials


def _candidates(kb: KnowledgeBase, state: list[str], config: SessionConfig, kept: list[Scored],
                extract: Extract) -> list[_Candidate]:
    unread = [s.name for s in kept if s.record is None]
    fetched = kb.get_patterns(unread) if unread else {}
    positions = index_state(state)
    # exact token matching: an extraction depends only on which pattern symbols are which state
    # symbols, so patterns relabelled alike (-1: outside the state) share one
    labels = {symbol: k for k, symbol in enumerate(positions)} if config.fuzzy_token_threshold <= 0 else None
    memo: dict[tuple, tuple[Extraction, list[dict]]] = {}
    candidates = []
    for s in kept:
        record = s.record or fetched.get(s.name)
        if record is None:   # deleted by another process (a backend without snapshots): gone
            continue
        events = record.pattern_data
        flat = [symbol for event in events for symbol in event]
        if labels is None:
            extraction, anomalies = extract(flat, state, config, positions)
        else:
            key = tuple([labels.get(symbol, -1) for symbol in flat])
            extraction, anomalies = memo.get(key) or memo.setdefault(key, extract(flat, state, config, positions))
        frequency = record.frequency if record.frequency else 1  # KATO floors a 0 at 1
        summary = candidate_summary(s.name, events, len(flat), extraction, s.similarity, len(state), frequency)
        candidates.append(_Candidate(s, record, len(flat), extraction, anomalies, summary))
    return candidates


def _prediction(candidate: _Candidate, index: int, stm: list[list[str]], len_state: int, pruned: bool,
                scores: metrics.EnsembleScores, totals: KBTotals) -> dict:
    """The whole prediction of one candidate, fields set in the order KATO sets them."""
    s, record, summary = candidate.scored, candidate.record, candidate.summary
    p = build_candidate(s.name, record.pattern_data, candidate.length, candidate.extraction, s.similarity, stm,
                        len_state)
    p["anomalies"] = list(candidate.anomalies)   # memoised extractions share one list
    p["frequency"] = summary["frequency"]
    p["emotives"] = average_emotives(record.emotives)
    if pruned:   # like KATO, when pruning happened every kept prediction carries its _pre_potential
        p["_pre_potential"] = s.pre
    p.update(metrics.symbol_metrics(scores, index, p["frequency"], totals))
    for key in ("pattern_probability", "weighted_strength", "predictive_information",
                "bayesian_posterior", "bayesian_prior", "bayesian_likelihood", "potential"):
        p[key] = summary[key]
    return p
