"""KATO's predictions over a knowledge base (spec §4): the single-symbol path and the full path.

``predict`` takes its candidates from the KB's symbol index and skips candidates that provably
cannot survive KATO's top-K pruning; ``predict_full_scan`` is the reference that scores every
pattern one by one. Both share everything after candidate scoring and return equal results
(floats bit for bit) for any KB and STM.

Determinism (KATO's order among ties depends on threads and set order): every ordering breaks
ties by the pattern name, ascending. The top-K pruning keeps the first ``K = 3·max_predictions``
candidates by (pre-potential descending, name ascending); the ensemble metrics run over the kept
candidates in that order (it fixes the float summation order); the final ranking sorts by
(``rank_sort_algo`` descending, name ascending) and keeps ``max_predictions``. The single-symbol
path sorts by (potential descending, name ascending).

How ``predict`` stays exact while skipping work. Two searches find the same kept list and the
same ``pruned`` flag (KATO prunes, and so sets ``_pre_potential``, only when more than K pass):

- **By id** (token matching, a positive ``recall_threshold``, and a backend with an integer-id
  index, ``store.base.SymbolIndex``: MemoryStore); ``index_search`` has the details. One pass
  over the state symbols' id lists gives every pattern sharing a symbol the set of state
  positions it covers: their number bounds its LCS, their longest consecutive run bounds its
  longest common block. ``prediction.block_bounds`` turns such bounds into an upper bound on the
  pre-potential that repeats its float steps (rounding is monotone, so the bound also holds
  between the computed floats). Bounds tighten in steps (the pattern's symbol ids, then its
  exact LCS, which also decides the recall gate), and a candidate is evaluated only while its
  best possible key (-bound, name) beats the K-th kept key (-pre-potential, name): an equal
  bound still enters with a smaller name, and candidates are taken in (bound, name) order, so
  once one cannot enter, none after it can. ``pruned`` counts every gate-passing candidate: when
  an LCS of 1 already reaches the threshold all of them pass; otherwise the undecided ones get
  their exact LCS.
- **By name** (every other case; ``candidates.search_by_name``):
  - Symbols are visited rarest first (``symbol_pmf``); each visit scores the new patterns
    holding that symbol: LCS with the state for all of them at once (RapidFuzz ``cdist``), then
    the recall gate, then an upper bound on the pre-potential (``prediction.pre_potential_bound``).
  - Candidates are evaluated (block matching and segmentation) in order of decreasing bound, and
    never once their bound is below the K-th best pre-potential found so far (a bound *equal* to
    it is still evaluated: the name decides ties).
  - A pattern not visited yet holds only unvisited symbols, so its LCS is at most the number of
    state positions those symbols fill; once that bound is below the K-th best and more than K
    candidates passed the gate (so KATO would prune), no unvisited pattern can be kept.

A sharded level (``store.base.ShardedKnowledgeBase``: every pattern in exactly one shard) is
searched shard by shard: the global first K are among the shards' first K each (the key depends on
the pattern and the state alone), so they are the first K of that union in the same order; more
than K pass overall exactly when the shards' counts, each taken up to K + 1, add up to more than K.
The ensemble then reads the merged view (global totals and symbol statistics).

Both evaluate a pattern relabelled so that every symbol absent from the state looks the same:
equal relabellings give equal pre-potentials, so each is computed once per call.

The name search caches pattern shapes per KB (a name is the sha1 of its events, so its shape
never changes). Frequency and emotives are read fresh on every call.

The ensemble (every field and metric of the kept candidates, the ranking) is ``ensemble.py``'s.
Like KATO, when pruning happened every kept prediction carries its ``_pre_potential``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from katoray.engine.candidates import Scored, search_by_name, shape_of
from katoray.engine.config import SessionConfig
from katoray.engine.ensemble import ensemble
from katoray.engine.index_search import IndexSearch
from katoray.engine.matching import Extraction, extract, fuzzy_extract, index_state, similarity
from katoray.engine.prediction import pre_potential, scores, single_symbol_prediction
from katoray.store.base import KnowledgeBase, PatternRecord, reading, shards_of, symbol_index

PRUNING_FACTOR = 3  # KATO computes ensemble metrics for at most 3·max_predictions candidates


@dataclass
class PredictionResult:
    """Predictions (ranked, at most ``max_predictions``) and the ensemble's future potentials."""

    predictions: list[dict] = field(default_factory=list)
    future_potentials: list[dict] = field(default_factory=list)


def predict(kb: KnowledgeBase, stm: list[list[str]], config: SessionConfig) -> PredictionResult:
    """KATO's predictions for ``stm`` (a list of events) under ``config``.

    0 symbols: no predictions. 1 symbol: the single-symbol path (spec §4.9). Otherwise the full
    path (spec §4.2–4.8) with candidates from the symbol index (every pattern when
    ``recall_threshold`` is 0: a pattern sharing no symbol then still qualifies).
    """
    state = [s for event in stm for s in event]
    if not state:
        return PredictionResult()
    with reading(kb):   # one state of the KB throughout, while other threads learn, delete or clear
        if len(state) == 1:
            return _single_symbol(kb, state[0], config)
        if config.fuzzy_token_threshold > 0:
            return _ensemble(kb, stm, state, config, *_search_fuzzy(kb, state, config))
        limit = PRUNING_FACTOR * config.max_predictions
        found = [_search(part, state, config, limit) for part in shards_of(kb)]
        if len(found) == 1:
            kept, passing = found[0]
        else:   # a sharded level: the first K of the shards' first K each, in the same order
            kept = sorted((s for part, _ in found for s in part), key=Scored.order)[:limit]
            passing = sum(count for _, count in found)
        return _ensemble(kb, stm, state, config, kept, passing > limit)


def _search(kb: KnowledgeBase, state: list[str], config: SessionConfig, limit: int) -> tuple[list[Scored], int]:
    """(the first ``limit`` candidates of ``kb`` in pruning order, how many passed the gate up to
    ``limit + 1``): by id where the KB has an id index, else by name."""
    return _search_by_id(kb, state, config, limit) or search_by_name(kb, state, config, limit)


def _search_by_id(kb: KnowledgeBase, state: list[str], config: SessionConfig,
                  limit: int) -> tuple[list[Scored], int] | None:
    """(kept, passing) from the KB's id index; None where it does not apply."""
    if not (config.recall_threshold > 0 and config.use_token_matching):
        return None
    index = symbol_index(kb, list(dict.fromkeys(state)))
    if index is None:
        return None
    found = IndexSearch(kb, index, state, config, limit).run()
    return [Scored(pre, name, None, sim) for pre, name, sim in found.kept()], found.passing()


def predict_full_scan(kb: KnowledgeBase, stm: list[list[str]], config: SessionConfig) -> PredictionResult:
    """Reference: the same predictions, scoring every pattern of the KB (no index, no bounds)."""
    state = [s for event in stm for s in event]
    if not state:
        return PredictionResult()
    with reading(kb):
        if len(state) == 1:
            return _single_symbol(kb, state[0], config)
        return _ensemble(kb, stm, state, config, *_scan(kb.iter_patterns(), state, config))


def _search_fuzzy(kb: KnowledgeBase, state: list[str], config: SessionConfig) -> tuple[list[Scored], bool]:
    """(kept, pruned) under fuzzy token matching: its matches change the pre-potential, so the
    bounds of the index searches do not hold; every candidate is scored (KATO scores them all
    too). Candidates share a symbol with the state unless the gate can pass without one."""
    if config.use_token_matching and config.recall_threshold > 0:
        records = kb.get_patterns(sorted(kb.patterns_with_any(set(state)))).values()
    else:
        records = kb.iter_patterns()
    return _scan(records, state, config)


def _scan(records: Iterable[PatternRecord], state: list[str], config: SessionConfig) -> tuple[list[Scored], bool]:
    """Score every record past the recall gate; (the first K by pruning order, whether K < all)."""
    positions = index_state(state)
    scored = []
    for record in records:
        flat = [s for event in record.pattern_data for s in event]
        sim = similarity(flat, state, config.use_token_matching)
        if not sim >= config.recall_threshold:
            continue
        found = _extract(flat, state, config, positions)
        if found is not None:
            pre = pre_potential(*scores(flat, [len(e) for e in record.pattern_data], len(flat), found[0], len(state)))
            scored.append(Scored(pre, record.name, shape_of(record), sim, record))
    limit = PRUNING_FACTOR * config.max_predictions
    scored.sort(key=Scored.order)
    return scored[:limit], len(scored) > limit


def _extract(flat: list[str], state: list[str], config: SessionConfig, positions) -> tuple[Extraction, list[dict]] | None:
    """(extraction, anomalies) of one pattern; anomalies only under fuzzy token matching."""
    if config.fuzzy_token_threshold > 0:
        return fuzzy_extract(flat, state, config.recall_threshold, config.fuzzy_token_threshold, positions)
    extraction = extract(flat, state, config.recall_threshold, positions)
    return None if extraction is None else (extraction, [])


# -- ensemble -----------------------------------------------------------------------------------

def _ensemble(kb: KnowledgeBase, stm, state, config: SessionConfig, kept: list[Scored],
              pruned: bool) -> PredictionResult:
    return PredictionResult(*ensemble(kb, stm, state, config, kept, pruned, _extract))


# -- single-symbol path ---------------------------------------------------------------------------

def _single_symbol(kb: KnowledgeBase, symbol: str, config: SessionConfig) -> PredictionResult:
    records: Iterable[PatternRecord] = kb.get_patterns(kb.patterns_starting_with(symbol)).values()
    predictions = [single_symbol_prediction(r, symbol, config.use_token_matching) for r in records
                   if r.pattern_data and r.pattern_data[0] and r.pattern_data[0][0] == symbol]
    predictions.sort(key=lambda p: (-p["potential"], p["name"]))
    return PredictionResult(predictions[:config.max_predictions], [])
