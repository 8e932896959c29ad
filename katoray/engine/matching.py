"""Matching one flattened pattern against the flattened STM, as KATO does (spec §4.2, §4.4).

Two different matchers decide different things, and they can disagree:

- **similarity** (the recall gate) is the LCS ratio ``2·LCS(P, S) / (|P| + |S|)``, computed with
  RapidFuzz's ``LCSseq`` (KATO's own scorer) and passed through KATO's ``×100 / 100`` round trip,
  so ``2·2/6`` is ``0.6666666666666665``. Character mode instead scores the space-joined strings
  with ``fuzz.ratio``.
- **structure** (matches, past/present, fragmentation) comes from the greedy longest-block matcher
  (difflib's ``SequenceMatcher`` algorithm with no junk and no autojunk): take the longest common
  contiguous block (ties: smallest i, then smallest j), recurse left and right, merge adjacent
  blocks. ``P=[b,b,c,a,b,c]``, ``S=[c,c,c,b]`` has LCS 2 (similarity 0.4) but a single block
  ``['b']``.

``seq1`` is always the pattern and ``seq2`` the state, as in KATO.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

Tokens = Sequence[str]


def lcs_similarity(lcs: int, len_pattern: int, len_state: int) -> float:
    """KATO's token-mode similarity from an LCS length, with its ``×100/100`` float round trip."""
    total = len_pattern + len_state
    if total == 0:
        return 0.0
    return (2.0 * lcs / total * 100.0) / 100.0


def similarity(pattern: Tokens, state: Tokens, use_token_matching: bool = True) -> float:
    """The recall-gate similarity of the full prediction path (spec §4.2 step 3)."""
    if use_token_matching:
        return lcs_similarity(LCSseq.similarity(pattern, state), len(pattern), len(state))
    return fuzz.ratio(" ".join(state), " ".join(pattern)) / 100.0


def single_symbol_similarity(pattern: Tokens, state: Tokens, use_token_matching: bool = True) -> float:
    """Similarity on the single-symbol path: ``2·LCS/total`` computed without the ``×100/100``."""
    if use_token_matching:
        total = len(pattern) + len(state)
        return 2.0 * LCSseq.similarity(pattern, state) / total if total else 0.0
    return fuzz.ratio(" ".join(pattern), " ".join(state)) / 100.0


# -- greedy longest blocks -------------------------------------------------------------------

def index_state(state: Tokens) -> dict[str, list[int]]:
    """Positions of each token in the state (ascending); build once per query."""
    positions: dict[str, list[int]] = {}
    for j, token in enumerate(state):
        positions.setdefault(token, []).append(j)
    return positions


def _common_runs(a: Tokens, b_positions: dict[str, list[int]]) -> list[tuple[int, int, int]]:
    """Every ``(i, j, k)`` with ``a[i] == b[j]``, k the length of the common run ending there, in
    (i, j) order: computed once per pattern, then read by every window."""
    pairs: list[tuple[int, int, int]] = []
    previous: dict[int, int] = {}  # j -> length of the common run ending at (i-1, j)
    for i, token in enumerate(a):
        positions = b_positions.get(token)
        if positions:
            current: dict[int, int] = {}
            for j in positions:
                k = current[j] = previous.get(j - 1, 0) + 1
                pairs.append((i, j, k))
            previous = current
        elif previous:
            previous = {}
    return pairs


def _longest_block(pairs: list[tuple[int, int, int]], alo: int, ahi: int, blo: int, bhi: int) -> tuple[int, int, int]:
    """Longest ``a[i:i+k] == b[j:j+k]`` inside the window; ties to the smallest i, then j. A run
    inside the window ending at (i, j) is the run ending there cut at the window's start."""
    best_i, best_j, best_k = alo, blo, 0
    for i, j, k in pairs:
        if i >= ahi:
            break
        if i < alo or j < blo or j >= bhi:
            continue
        if k > i - alo:
            k = i - alo + 1
        if k > j - blo:
            k = j - blo + 1
        if k > best_k:
            best_i, best_j, best_k = i - k + 1, j - k + 1, k
    return best_i, best_j, best_k


def matching_blocks(a: Tokens, b: Tokens,
                    b_positions: dict[str, list[int]] | None = None) -> list[tuple[int, int, int]]:
    """Real matching blocks ``(i, j, n)`` of ``a`` against ``b``, sorted, adjacent ones merged.

    Equal to ``difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()``
    without the final ``(len a, len b, 0)`` sentinel.
    """
    if b_positions is None:
        b_positions = index_state(b)
    pairs = _common_runs(a, b_positions)
    if not pairs:
        return []
    found: list[tuple[int, int, int]] = []
    queue = [(0, len(a), 0, len(b))]
    while queue:
        alo, ahi, blo, bhi = queue.pop()
        i, j, k = block = _longest_block(pairs, alo, ahi, blo, bhi)
        if k:
            found.append(block)
            if alo < i and blo < j:
                queue.append((alo, i, blo, j))
            if i + k < ahi and j + k < bhi:
                queue.append((i + k, ahi, j + k, bhi))
    found.sort()
    merged: list[tuple[int, int, int]] = []
    for i, j, k in found:
        if merged and merged[-1][0] + merged[-1][2] == i and merged[-1][1] + merged[-1][2] == j:
            pi, pj, pk = merged[-1]
            merged[-1] = (pi, pj, pk + k)
        else:
            merged.append((i, j, k))
    return merged


# -- extraction -------------------------------------------------------------------------------

class Extraction(NamedTuple):
    """Where the state lands in one pattern (flat token positions).

    ``matches`` are the state tokens inside the blocks, in order; the flat past is
    ``pattern[:start]`` and the flat present ``pattern[start:stop]``; ``num_blocks`` is B (0 only
    when nothing matched and the cutoff is 0).
    """

    matches: list[str]
    start: int
    stop: int
    num_blocks: int


def extract(pattern: Tokens, state: Tokens, cutoff: float,
            state_positions: dict[str, list[int]] | None = None) -> Extraction | None:
    """KATO's ``extract_prediction_info`` structure (spec §4.4); None when dropped.

    A pattern with no block is dropped when ``cutoff > 0``; at cutoff 0 its whole length is the
    present.
    """
    blocks = matching_blocks(pattern, state, state_positions)
    if not blocks:
        if cutoff > 0.0:
            return None
        return Extraction([], 0, len(pattern), 0)
    matches = [token for _, j, n in blocks for token in state[j:j + n]]
    first_i = blocks[0][0]
    last_i, _, last_n = blocks[-1]
    return Extraction(matches, first_i, last_i + last_n, len(blocks))


def fuzzy_extract(pattern: Tokens, state: Tokens, cutoff: float, fuzzy_threshold: float,
                  state_positions: dict[str, list[int]] | None = None) -> tuple[Extraction, list[dict]] | None:
    """``extract`` with KATO's fuzzy token matching (``fuzzy_token_threshold`` > 0), and the
    anomalies: ``(extraction, [{"observed", "expected", "similarity"}, ...])``; None when dropped.

    As KATO does: the blocks (so past, present and fragmentation) stay exact, while ``matches``
    become every state token (in state order, repeats included) whose best RapidFuzz ``ratio``
    against the pattern's tokens reaches ``fuzzy_threshold`` (ties: the earliest pattern token);
    a match that is not exact is an anomaly, its similarity the ratio / 100.
    """
    exact = extract(pattern, state, cutoff, state_positions)
    if exact is None:
        return None
    matches: list[str] = []
    anomalies: list[dict] = []
    cutoff_score = fuzzy_threshold * 100   # KATO's own expression: the same float, the same ties
    for token in state if pattern else ():
        best = process.extractOne(token, pattern, scorer=fuzz.ratio, score_cutoff=cutoff_score)
        if best is not None:
            matches.append(token)
            if token != best[0]:
                anomalies.append({"observed": token, "expected": best[0], "similarity": best[1] / 100.0})
    return exact._replace(matches=matches), anomalies


def flat_diff(present: Tokens, state: Tokens) -> tuple[list[str], list[str]]:
    """KATO's flat ``missing``/``extras``: the ``-``/``+`` lines of ``compare(present, state)``.

    In a replace, the shorter side is listed first; that changes neither list.
    """
    missing: list[str] = []
    extras: list[str] = []
    i = j = 0
    for bi, bj, n in matching_blocks(present, state) + [(len(present), len(state), 0)]:
        missing.extend(present[i:bi])
        extras.extend(state[j:bj])
        i, j = bi + n, bj + n
    return missing, extras


def num_flat_extras(num_matches: int, len_state: int) -> int:
    """X for snr: the state tokens marked ``+`` by ``compare(present, state)``.

    The blocks of present-vs-state are exactly the blocks of pattern-vs-state (the present spans
    all of them and the greedy choice inside it is unchanged), so every state token outside the
    matches is a ``+`` line. ``tests/engine/test_matching.py`` checks this against ``flat_diff``.
    """
    return len_state - num_matches
