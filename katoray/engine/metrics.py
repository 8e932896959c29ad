"""Ensemble metrics of the full prediction path (spec §4.6), computed over the pruned candidates.

Every formula is KATO's, including its quirks: ``total_pattern_frequencies`` counts unique
patterns, so confluence's ``P(e|h) = freq/TPF`` can exceed 1; entropy and tfidf are computed over
the *present* symbols (katoray has no finalize-training); symbol probabilities exist only for the
symbols in the ensemble's matches and missing (any other symbol counts as probability 0).

Floating point follows KATO's arithmetic step for step (numpy where KATO uses numpy, Python floats
where it uses Python), with one deliberate difference: where KATO iterates a ``set`` of symbols
(hash order, so the last bits can change between processes) we iterate symbols in order of first
occurrence. The order of the candidates themselves is fixed by the caller (``ensemble.py``).
"""
from __future__ import annotations

from collections import Counter
from functools import reduce
from math import log, log2, log10
from operator import add
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from katoray.engine.prediction import fragmentation_term
from katoray.store.base import KBTotals

_ABSENT_PROBABILITY = 1e-10  # confluence's stand-in for a symbol of probability 0 (avoids log 0)


class EnsembleScores(NamedTuple):
    """``present_scores``: shared by every prediction of one ensemble."""

    probabilities: dict[str, float]
    presents: list[list[str]]
    counts: list[Counter]
    itfdf: list[float]


def present_symbols(prediction: Mapping) -> list[str]:
    return [s for event in prediction["present"] for s in event]


def symbol_probabilities(predictions: Iterable[Mapping], pmf: Mapping[str, int],
                         total_unique_patterns: int) -> dict[str, float]:
    """``P(s) = pmf(s)/TUP`` for every symbol in the ensemble's matches and missing (0 if unknown)."""
    probabilities: dict[str, float] = {}
    for prediction in predictions:
        missing = [s for event in prediction["missing"] for s in event]
        for symbol in (*prediction["matches"], *missing):
            if symbol in probabilities:
                continue
            if symbol not in pmf:
                probabilities[symbol] = 0
            else:
                probabilities[symbol] = pmf[symbol] / total_unique_patterns if total_unique_patterns > 0 else 0.0
    return probabilities


def ensemble_symbols(predictions: Iterable[Mapping]) -> set[str]:
    """Symbols whose pmf the ensemble metrics need (matches and missing of every prediction)."""
    out: set[str] = set()
    for prediction in predictions:
        out.update(prediction["matches"])
        for event in prediction["missing"]:
            out.update(event)
    return out


def itfdf_similarities(presents: Sequence[list[str]], frequencies: Sequence[int], state: Sequence[str],
                       probabilities: Mapping[str, float], counts: Sequence[Counter] | None = None) -> list[float]:
    """``1 − (1 − cos(v_state, v_present))·freq/F`` per prediction, or 0.0 when F = 0.

    Vectors run over the sorted union of present and state symbols, each entry ``P(s)·count``;
    ``counts``: each present's ``Counter``, if the caller has them.
    """
    counts = counts if counts is not None else [Counter(present) for present in presents]
    symbols = sorted(set(state).union(*presents))
    column = {s: i for i, s in enumerate(symbols)}
    state_vec = np.zeros(len(symbols))
    for symbol, count in Counter(state).items():
        state_vec[column[symbol]] = probabilities.get(symbol, 0) * count
    state_norm = np.linalg.norm(state_vec)
    matrix = np.zeros((len(presents), len(symbols)))
    for row, present_counts in enumerate(counts):
        for symbol, count in present_counts.items():
            matrix[row, column[symbol]] = probabilities.get(symbol, 0) * count
    if state_norm > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            dots = matrix @ state_vec
            denominators = np.linalg.norm(matrix, axis=1) * state_norm
            cosines = np.where(denominators > 0, dots / denominators, 0.0)
        distances = 1.0 - cosines
    else:
        distances = np.ones(len(presents))
    total = sum(frequencies)
    return [1 - (float(d) * f / total) if total > 0 else 0.0 for d, f in zip(distances, frequencies)]


def confluence(present: Sequence[str], probabilities: Mapping[str, float], frequency: int,
               total_pattern_frequencies: int) -> float:
    """``P(e|h)·(1 − Π P(s))`` over the present symbols (each occurrence counts); 0 if empty."""
    if not present:
        return 0.0
    p_e_h = frequency / total_pattern_frequencies if total_pattern_frequencies > 0 else 0.0
    logs = [log10(p) if (p := probabilities.get(s, _ABSENT_PROBABILITY)) > 0 else log10(_ABSENT_PROBABILITY)
            for s in present]
    return p_e_h * (1 - 10 ** reduce(add, logs))


def entropies(present: Sequence[str], probabilities: Mapping[str, float],
              num_symbols: int, counts: Counter | None = None) -> tuple[float, float, float]:
    """(entropy, normalized_entropy, global_normalized_entropy) of the present symbols
    (``counts``: their ``Counter``, if the caller has it)."""
    if not present:
        return 0.0, 0.0, 0.0
    counts = counts if counts is not None else Counter(present)
    length = len(present)
    entropy = normalized = global_normalized = 0.0
    for count in counts.values():
        p = count / length
        entropy -= p * log2(p)
    if num_symbols > 1:
        for count in counts.values():
            p = count / length
            normalized -= p * log(p, num_symbols)
        for symbol in counts:
            prob = probabilities.get(symbol, 0)
            if prob > 0:
                global_normalized -= prob * log(prob, num_symbols)
    return entropy, normalized, global_normalized


def tfidf_score(present: Sequence[str], probabilities: Mapping[str, float], total_unique_patterns: int,
                counts: Counter | None = None) -> float:
    """Mean of ``tf·idf`` over the distinct present symbols, ``idf = log2(TUP/n) + 1``
    (``counts``: their ``Counter``, if the caller has it; it lists them in first-seen order)."""
    if not present or total_unique_patterns <= 0:
        return 0.0
    counts = counts if counts is not None else Counter(present)
    scores = []
    for symbol, count in counts.items():
        tf = count / len(present)
        # n is rebuilt from the float probability as KATO does, so it can land one below pmf(s)
        n = int(probabilities[symbol] * total_unique_patterns) if symbol in probabilities else 1
        idf = log2(total_unique_patterns / (n if n != 0 else 1)) + 1
        scores.append(tf * idf)
    return sum(scores) / len(scores)


def future_group(future: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """KATO's grouping of futures: its key is the sha1 of the JSON of the events, each sorted, and
    that JSON is equal exactly when these tuples are, so they group the same futures."""
    return tuple(tuple(sorted(event)) for event in future)


def predictive_information(predictions: list[dict]) -> list[dict]:
    """Set ``pattern_probability``, ``weighted_strength`` and ``predictive_information``.

    Returns ``future_potentials``: one entry per distinct future, by ``aggregate_potential``
    descending (stable: first appearance breaks ties).
    """
    total_frequency = sum(p["frequency"] for p in predictions)
    for p in predictions:
        p["pattern_probability"] = p["frequency"] / total_frequency
        p["weighted_strength"] = p["similarity"] * p["pattern_probability"]
    keys = [future_group(p["future"]) if p["future"] else None for p in predictions]
    groups: dict[tuple, dict] = {}
    for p, key in zip(predictions, keys):
        if key is not None:
            group = groups.setdefault(key, {
                "future": [list(event) for event in p["future"]], "total_weighted_frequency": 0.0,
                "supporting_patterns": 0})
            group["total_weighted_frequency"] += p["frequency"] * p["similarity"]
            group["supporting_patterns"] += 1
    total_weighted = sum(g["total_weighted_frequency"] for g in groups.values())
    for group in groups.values():
        group["aggregate_potential"] = group["total_weighted_frequency"] / total_weighted if total_weighted > 0 else 0.0
    for p, key in zip(predictions, keys):
        share = groups[key]["aggregate_potential"] if key is not None else 0.0
        p["predictive_information"] = p["weighted_strength"] / share if share > 0 else 0.0
    ranked = sorted(groups.values(), key=lambda g: g["aggregate_potential"], reverse=True)
    return [{"future": g["future"], "aggregate_potential": g["aggregate_potential"],
             "supporting_patterns": g["supporting_patterns"],
             "total_weighted_frequency": g["total_weighted_frequency"]} for g in ranked]


def bayesian(predictions: list[dict]) -> None:
    """Set ``bayesian_posterior``, ``bayesian_prior`` (freq/Σfreq) and ``bayesian_likelihood``."""
    frequencies = np.array([p["frequency"] for p in predictions], dtype=float)
    likelihoods = np.array([p["similarity"] for p in predictions], dtype=float)
    total = frequencies.sum()
    if total <= 0:
        for p in predictions:
            p.update(bayesian_posterior=0.0, bayesian_prior=0.0, bayesian_likelihood=p["similarity"])
        return
    priors = frequencies / total
    evidence = np.dot(likelihoods, priors)
    posteriors = (likelihoods * priors) / evidence if evidence > 0 else np.zeros(len(predictions))
    for p, posterior, prior, likelihood in zip(predictions, posteriors, priors, likelihoods):
        p.update(bayesian_posterior=float(posterior), bayesian_prior=float(prior),
                 bayesian_likelihood=float(likelihood))


def potential(prediction: Mapping) -> float:
    """``(evidence+confidence)·snr + itfdf_similarity + 1/(fragmentation+1)`` (0 for frag −1)."""
    return ((prediction["evidence"] + prediction["confidence"]) * prediction["snr"]
            + prediction["itfdf_similarity"] + fragmentation_term(prediction["fragmentation"]))


def present_scores(predictions: Sequence[Mapping], state: Sequence[str], totals: KBTotals,
                   symbol_pmf: Callable[[Iterable[str]], Mapping[str, int]]) -> EnsembleScores:
    """What every prediction's symbol metrics share: the symbol probabilities, each present (flat)
    with its ``Counter``, and each itfdf similarity. ``predictions`` is the pruned ensemble in
    its fixed order (each with ``matches``, ``missing``, ``present`` and ``frequency`` set);
    ``symbol_pmf`` is the KB's lookup of distinct-pattern counts per symbol."""
    probabilities = symbol_probabilities(predictions, symbol_pmf(sorted(ensemble_symbols(predictions))),
                                         totals.total_unique_patterns)
    presents = [present_symbols(p) for p in predictions]
    counts = [Counter(present) for present in presents]
    itfdf = itfdf_similarities(presents, [p["frequency"] for p in predictions], state, probabilities, counts)
    return EnsembleScores(probabilities, presents, counts, itfdf)


def symbol_metrics(scores: EnsembleScores, index: int, frequency: int, totals: KBTotals) -> dict[str, float]:
    """The ``index``-th prediction's entropy, normalized_entropy, global_normalized_entropy,
    itfdf_similarity, confluence and tfidf_score (KATO's order)."""
    present, counts, probabilities = scores.presents[index], scores.counts[index], scores.probabilities
    entropy, normalized, global_normalized = entropies(present, probabilities, totals.num_symbols, counts)
    return {"entropy": entropy, "normalized_entropy": normalized, "global_normalized_entropy": global_normalized,
            "itfdf_similarity": scores.itfdf[index],
            "confluence": confluence(present, probabilities, frequency, totals.total_pattern_frequencies),
            "tfidf_score": tfidf_score(present, probabilities, totals.total_unique_patterns, counts)}
