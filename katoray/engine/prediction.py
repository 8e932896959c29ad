"""One candidate pattern turned into KATO's per-pattern prediction fields (spec §4.5).

The flat extraction (``matching.extract``) says where the state lands in the flattened pattern;
this module maps that back onto the pattern's events:

1. events are consumed until their lengths reach the flat past: those are ``past`` (an event only
   partly in the flat past still counts as past);
2. then until they reach past + present: ``present``; the rest is ``future``;
3. fix-up: if ``past`` is not empty and the first match occurs (by value) in its last event, that
   event moves to the front of ``present``;
4. ``missing`` has one list per present event (its symbols not among the matches, by value) and
   ``extras`` one list per STM event (its symbols not in the flattened present).

``evidence = |matches| / length``, ``confidence = |matches| / |present symbols|`` (after the
fix-up), ``snr = (2|matches| − X) / (2|matches| + X)`` where X counts the *flat* extras of the
§4.4 diff (not the event-aligned ones returned), and ``fragmentation = B − 1``.

Also here: the single-symbol path's flat prediction (§4.9), and the upper bounds on the
pre-potential that let ``predict`` skip candidates exactly.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from katoray.engine.emotives import average_emotives
from katoray.engine.matching import (Extraction, extract, flat_diff, num_flat_extras,
                                     single_symbol_similarity)

Events = Sequence[Sequence[str]]


def event_cuts(event_lengths: Sequence[int], past_len: int, present_len: int) -> tuple[int, int]:
    """Event indices ``(p, q)``: past = events[:p], present = events[p:q], before the fix-up."""
    consumed = index = 0
    while consumed < past_len:
        consumed += event_lengths[index]
        index += 1
    past_end = index
    while consumed < past_len + present_len:
        consumed += event_lengths[index]
        index += 1
    return past_end, index


def present_cuts(flat: Sequence[str], event_lengths: Sequence[int], extraction: Extraction) -> tuple[int, int]:
    """Event indices of the present after KATO's fix-up (steps 1–3 of the module docstring)."""
    past_end, present_end = event_cuts(event_lengths, extraction.start, extraction.stop - extraction.start)
    if past_end > 0 and extraction.matches:
        tail_start = sum(event_lengths[:past_end - 1])
        if extraction.matches[0] in flat[tail_start:tail_start + event_lengths[past_end - 1]]:
            past_end -= 1
    return past_end, present_end


def temporal_fields(events: Events, extraction: Extraction, stm: Events) -> dict:
    """``past``, ``present``, ``future``, ``missing`` and ``extras`` (lists of event lists)."""
    flat = [s for e in events for s in e]
    past_end, present_end = present_cuts(flat, [len(e) for e in events], extraction)
    return _temporal_fields(events, extraction.matches, past_end, present_end, stm)


def _temporal_fields(events: Events, matches: Sequence[str], past_end: int, present_end: int, stm: Events) -> dict:
    present = [list(e) for e in events[past_end:present_end]]
    matched = set(matches)  # membership by value, as KATO's ``in`` on the list
    present_symbols = {s for event in present for s in event}
    return {
        "past": [list(e) for e in events[:past_end]],
        "present": present,
        "future": [list(e) for e in events[present_end:]],
        "missing": [[s for s in event if s not in matched] for event in present],
        "extras": [[s for s in event if s not in present_symbols] for event in stm],
    }


def snr(num_matches: int, num_extras: int) -> float:
    """Signal-to-noise ratio in [-1, 1]; 0 when there is neither signal nor noise."""
    denominator = 2.0 * num_matches + num_extras
    return (2.0 * num_matches - num_extras) / denominator if denominator > 0 else 0.0


def fragmentation_term(fragmentation: float) -> float:
    """``1/(fragmentation+1)``, or 0 for the no-match case (fragmentation −1)."""
    return 0.0 if fragmentation == -1 else 1.0 / (fragmentation + 1)


def pre_potential(evidence: float, confidence: float, snr_value: float, fragmentation: float) -> float:
    """Potential without the itfdf term: KATO's top-K pruning key (spec §4.6)."""
    return (evidence + confidence) * snr_value + fragmentation_term(fragmentation)


def scores(flat: Sequence, event_lengths: Sequence[int], length: int, extraction: Extraction,
           len_state: int) -> tuple[float, float, float, float]:
    """``(evidence, confidence, snr, fragmentation)`` without building any event lists.

    ``flat`` may be any relabelling of the pattern that keeps equality with the state's symbols
    (the prediction path scores symbols mapped to small ints).
    """
    past_end, present_end = present_cuts(flat, event_lengths, extraction)
    return _scores(event_lengths, length, extraction, len_state, past_end, present_end)


def _scores(event_lengths: Sequence[int], length: int, extraction: Extraction, len_state: int,
            past_end: int, present_end: int) -> tuple[float, float, float, float]:
    num_matches = len(extraction.matches)
    num_present = sum(event_lengths[past_end:present_end])
    return (num_matches / length if length > 0 else 0.0,
            num_matches / num_present if num_present > 0 else 0.0,
            snr(num_matches, num_flat_extras(num_matches, len_state)),
            float(extraction.num_blocks - 1))


def _event_cuts(events: Events, event_lengths: Sequence[int], extraction: Extraction) -> tuple[int, int]:
    """``present_cuts`` from the events themselves (the last past event is that flat slice)."""
    past_end, present_end = event_cuts(event_lengths, extraction.start, extraction.stop - extraction.start)
    if past_end > 0 and extraction.matches and extraction.matches[0] in events[past_end - 1]:
        past_end -= 1  # KATO's fix-up
    return past_end, present_end


def candidate_summary(name: str, events: Events, length: int, extraction: Extraction, similarity: float,
                      len_state: int, frequency: int) -> dict:
    """What the ensemble needs of every candidate (``name``, ``matches``, ``present``,
    ``missing``, ``future``, ``frequency``, ``similarity``, ``evidence``, ``confidence``, ``snr``,
    ``fragmentation``), with ``build_candidate``'s values; the event lists are the pattern's own."""
    event_lengths = [len(e) for e in events]
    past_end, present_end = _event_cuts(events, event_lengths, extraction)
    evidence, confidence, snr_value, fragmentation = _scores(event_lengths, length, extraction, len_state,
                                                             past_end, present_end)
    matched = set(extraction.matches)  # membership by value, as KATO's ``in`` on the list
    present = events[past_end:present_end]
    return {"name": name, "matches": extraction.matches, "present": present,
            "missing": [[s for s in event if s not in matched] for event in present],
            "future": events[present_end:], "frequency": frequency, "similarity": similarity,
            "evidence": evidence, "confidence": confidence, "snr": snr_value, "fragmentation": fragmentation}


def build_candidate(name: str, events: Events, length: int, extraction: Extraction,
                    similarity: float, stm: Events, len_state: int) -> dict:
    """The per-pattern part of a full-path prediction, keys in KATO's order.

    ``frequency``, ``emotives`` and the ensemble metrics are filled in later; ``pattern_data`` is
    never added (KATO removes it before returning).
    """
    event_lengths = [len(e) for e in events]
    past_end, present_end = _event_cuts(events, event_lengths, extraction)
    evidence, confidence, snr_value, fragmentation = _scores(event_lengths, length, extraction, len_state,
                                                             past_end, present_end)
    fields = _temporal_fields(events, extraction.matches, past_end, present_end, stm)
    return {
        "type": "prototypical", "name": name, "frequency": None, "emotives": None,
        "matches": list(extraction.matches), "past": fields["past"], "present": fields["present"],
        "missing": fields["missing"], "extras": fields["extras"], "anomalies": [],
        "potential": 0.0, "evidence": evidence, "similarity": similarity,
        "fragmentation": fragmentation, "snr": snr_value, "confluence": 0.0,
        "predictive_information": 0.0, "sequence": [list(e) for e in events],
        "future": fields["future"], "confidence": confidence,
        "weighted_similarity": None, "weighted_evidence": None,
        "weighted_confidence": None, "weighted_snr": None,
    }


def single_symbol_prediction(record, symbol: str, use_token_matching: bool = True) -> dict:
    """A prediction of the single-symbol path (spec §4.9) for a pattern starting with ``symbol``.

    Flat ``past``/``present``/``future``/``missing``/``extras``, ``snr = m/(m+extras)`` (not the
    full path's formula), potential without the itfdf term, the stored ``pattern_data`` and
    ``length`` kept, and none of the ensemble metrics.
    """
    flat = [s for event in record.pattern_data for s in event]
    state = [symbol]
    extraction = extract(flat, state, 0.0)
    past, present = flat[:extraction.start], flat[extraction.start:extraction.stop]
    missing, extras = flat_diff(present, state)
    matches = extraction.matches
    evidence = len(matches) / len(flat) if flat else 0.0
    confidence = len(matches) / len(present) if present else 0.0
    snr_value = len(matches) / (len(matches) + len(extras)) if matches or extras else 0.0
    fragmentation = extraction.num_blocks - 1
    return {
        "name": record.name, "pattern_data": [list(e) for e in record.pattern_data], "length": record.length,
        "frequency": record.frequency if record.frequency else 1,  # KATO floors a 0 at 1
        "emotives": average_emotives(record.emotives),
        "matches": matches, "missing": missing, "present": present, "past": past,
        "future": flat[len(past) + len(present):], "extras": extras,
        "similarity": single_symbol_similarity(flat, state, use_token_matching),
        "evidence": evidence, "confidence": confidence, "snr": snr_value, "fragmentation": fragmentation,
        "anomalies": [], "weighted_similarity": None, "weighted_evidence": None,
        "weighted_confidence": None, "weighted_snr": None,
        "potential": (evidence + confidence) * snr_value + fragmentation_term(fragmentation),
    }


# -- bounds for exact early termination (used by predict.py) ------------------------------------
# Each bound repeats the float steps of pre_potential with inputs that are each >= the real ones
# (or, for a negative snr, a factor that is <= the real one), and IEEE rounding is monotone, so a
# bound also holds between the computed floats, not just between the real numbers.

def pre_potential_bound(lcs: int, length: int, single_symbol_events: bool, len_state: int) -> float:
    """Upper bound on the pre-potential of a pattern of ``length`` symbols whose LCS with the state is ``lcs``.

    The matches number at most ``lcs`` (and at least 1 when ``lcs > 0``), the snr grows with the
    matches, confidence lies in ``[1/length, 1]`` and the fragmentation term is at most 1. With
    ``lcs == 1`` and one symbol per event the bound is the exact value: the single match is the
    first pattern symbol found in the state, so the present is that one event.
    """
    if lcs == 0:
        return 0.0  # no block: fragmentation −1, evidence and confidence 0
    snr_bound = snr(lcs, num_flat_extras(lcs, len_state))
    if snr_bound >= 0:
        return (lcs / length + 1.0) * snr_bound + 1.0
    confidence_floor = 1.0 if lcs == 1 and single_symbol_events else 1 / length
    return (1 / length + confidence_floor) * snr_bound + 1.0


def pre_potential_bounds(lcs: np.ndarray, length: np.ndarray, single_symbol_events: np.ndarray,
                         len_state: int) -> np.ndarray:
    """``pre_potential_bound`` for many candidates at once (same float steps, element-wise)."""
    lcs = lcs.astype(np.int64)
    extras = len_state - lcs
    with np.errstate(divide="ignore", invalid="ignore"):
        snr_bound = (2.0 * lcs - extras) / (2.0 * lcs + extras)
        positive = (lcs / length + 1.0) * snr_bound + 1.0
        confidence_floor = np.where((lcs == 1) & single_symbol_events, 1.0, 1 / length)
        negative = (1 / length + confidence_floor) * snr_bound + 1.0
    return np.where(lcs == 0, 0.0, np.where(snr_bound >= 0, positive, negative))


def unseen_pre_potential_bound(max_lcs: int, len_state: int) -> float:
    """Upper bound on the pre-potential of any pattern whose LCS with the state is <= ``max_lcs``.

    Nothing is known of such a pattern but that bound: evidence and confidence are each at most 1.
    ``-inf`` when ``max_lcs`` is 0 (no such candidate can pass the recall gate).
    """
    if max_lcs <= 0:
        return float("-inf")
    lcs = min(max_lcs, len_state)
    snr_bound = snr(lcs, num_flat_extras(lcs, len_state))
    return (2.0 * snr_bound if snr_bound >= 0 else 0.0) + 1.0


def block_bounds(lcs: np.ndarray, longest_block: np.ndarray, length: np.ndarray,
                 single_symbol_events: np.ndarray, may_fix_up: np.ndarray, len_state: int) -> np.ndarray:
    """Upper bounds on the pre-potential from an upper bound on the LCS and one on the longest block.

    A pattern's greedy blocks (merged) are common substrings, so none is longer than the longest
    common substring r, the first block is that long, and the matches m lie in ``[r, lcs]``. So for
    each possible m: B >= ceil(m / r) blocks, B == 1 only when m <= r; the confidence is at most 1
    and at least m/length, except for one block of single-symbol events, where the present is the
    m matched events, plus the last past event when KATO's fix-up applies (``may_fix_up``: only if
    two adjacent pattern symbols are the same state symbol; never for m == 1, whose block is the
    first pattern symbol found in the state), so at least m/(m+1). Any r̂ >= r and
    any ℓ >= LCS give valid bounds; with the exact values the bound of a pattern matched in one
    block without the fix-up is its exact pre-potential. Same float steps as ``pre_potential``.
    """
    longest_block = np.maximum(longest_block, 1)
    best = np.zeros(np.broadcast(lcs, longest_block, length).shape)
    for m in range(1, int(np.max(lcs, initial=0)) + 1):
        snr_m = snr(m, num_flat_extras(m, len_state))
        possible = lcs >= m
        evidence = m / length
        if m >= 2:  # several blocks
            confidence = 1.0 if snr_m >= 0 else m / length
            several = (evidence + confidence) * snr_m + 1.0 / np.maximum(2, -(-m // longest_block))
            best = np.where(possible, np.maximum(best, several), best)
        if snr_m >= 0:
            confidence = 1.0
        else:
            fix_up = may_fix_up if m >= 2 else False  # one match: no state symbol before it, no fix-up
            confidence = np.where(single_symbol_events, np.where(fix_up, m / (m + 1), 1.0), m / length)
        one = (evidence + confidence) * snr_m + 1.0
        best = np.where(possible & (longest_block >= m), np.maximum(best, one), best)
    return best
