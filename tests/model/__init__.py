"""Brute-force references for the decoder and the evaluation: every answer recomputed by scanning
each pattern of the knowledge bases (no index) or the raw token streams (no suffix array)."""
from __future__ import annotations

from collections import Counter, defaultdict
from functools import lru_cache

DISCOUNT = 0.9   # the decoder's, restated: a change there must be a change here too


class BruteHierarchy:
    """The decoder's rule recomputed from ``kb.iter_patterns()`` of each level."""

    def __init__(self, kbs, levels=None):
        kbs = list(kbs)[:levels or len(kbs)]
        self.flat = [{r.name: [s for e in r.pattern_data for s in e] for r in kb.iter_patterns()} for kb in kbs]
        self.freq = [{r.name: r.frequency for r in kb.iter_patterns()} for kb in kbs]
        self.where = [defaultdict(list) for _ in kbs]      # level -> symbol -> [(pattern, position)]
        for level, patterns in enumerate(self.flat):
            for name, symbols in patterns.items():
                for i, symbol in enumerate(symbols):
                    self.where[level][symbol].append((name, i))
        frequencies = Counter()
        for name, symbols in self.flat[0].items():
            for symbol in symbols:
                frequencies[symbol] += self.freq[0][name]
        total = sum(frequencies.values())
        self.unigram = {s: f / total for s, f in frequencies.items()}
        self.max_state = max(map(len, self.flat[0].values()))

    def first_token(self, level, name):
        while level > 0:
            name, level = self.flat[level][name][0][5:], level - 1
        return self.flat[0][name][0]

    @lru_cache(maxsize=None)
    def follows(self, level, name):
        """Tokens that follow pattern ``name`` of ``level`` according to the levels above."""
        out = Counter()
        if level + 1 >= len(self.flat):
            return out
        for parent, i in self.where[level + 1].get("PTRN|" + name, ()):
            symbols = self.flat[level + 1][parent]
            if i + 1 < len(symbols):
                out[self.first_token(level, symbols[i + 1][5:])] += self.freq[level + 1][parent]
            else:
                out.update(self.follows(level + 1, parent))
        return out

    def counts(self, state):
        """n_L for L = 1, 2, ... while any applies."""
        state, out = list(state)[-self.max_state:], []
        for length in range(1, len(state) + 1):
            wanted, n = state[-length:], Counter()
            for name, i in self.where[0].get(state[-1], ()):
                symbols = self.flat[0][name]
                if i >= length - 1 and symbols[i - length + 1:i + 1] == wanted:
                    if i + 1 < len(symbols):
                        n[symbols[i + 1]] += self.freq[0][name]
                    else:
                        n.update(self.follows(0, name))
            if sum(n.values()) == 0:
                break
            out.append(n)
        return out

    def distribution(self, state):
        p = dict(self.unigram)
        for n in self.counts(state):
            total, distinct = float(sum(n.values())), len([c for c in n.values() if c > 0])
            p = {t: (max(float(n.get(t, 0)) - DISCOUNT, 0.0) + DISCOUNT * distinct * q) / total for t, q in p.items()}
        return p

    def top(self, state, k=5):
        p = self.distribution(state)
        return sorted(p, key=lambda t: (-p[t], t))[:k]


def brute_infinigram_top(streams, context, k=5):
    """The longest suffix of ``context`` followed by a token somewhere in ``streams``; its top k
    followers by count, ties by the order tokens first appear in the streams."""
    first_seen, at = {}, defaultdict(list)
    for d, stream in enumerate(streams):
        for i, piece in enumerate(stream):
            first_seen.setdefault(piece, len(first_seen))
            at[piece].append((d, i))
    best = Counter()
    for length in range(1, len(context) + 1):
        wanted, n = list(context[-length:]), Counter()
        for d, end in at.get(context[-1], ()):       # occurrences ending on the context's last token
            stream = streams[d]
            if end - length + 1 >= 0 and end + 1 < len(stream) and stream[end - length + 1:end + 1] == wanted:
                n[stream[end + 1]] += 1
        if not n:
            break
        best = n
    if not best:                                      # no suffix seen: the empty one, the unigram
        best = Counter(p for stream in streams for p in stream)
    return sorted(best, key=lambda t: (-best[t], first_seen[t]))[:k]


# -- one trained run shared by the tests that use it (trained once per session) --------------------
_RUNS: dict = {}
SPLIT = 5   # every 5th short book (from the 3rd) is held out


def trained_run(tmp_path_factory, kjv_books_path):
    """(runs_dir, run_id, train file, held-out file): KJV books under 20,000 characters, every
    5th held out, GPT-2, 4 levels of chunk 8, trained with ``start_run`` on the session's Ray."""
    import json

    from katoray.jobs import TrainConfig, start_run
    from tests.jobs import GPT2, corpus

    if "run" not in _RUNS:
        folder = tmp_path_factory.mktemp("use-run")
        books = corpus(tmp_path_factory, kjv_books_path, 20_000).read_text(encoding="utf-8").splitlines()
        train, held_out = folder / "train.jsonl", folder / "held_out.jsonl"
        train.write_text("".join(b + "\n" for i, b in enumerate(books) if i % SPLIT != 2), encoding="utf-8")
        held_out.write_text("".join(b + "\n" for i, b in enumerate(books) if i % SPLIT == 2), encoding="utf-8")
        assert all("title" in json.loads(b) for b in books)
        runs_dir = folder / "runs"
        start_run(TrainConfig(data=str(train), tokenizer=str(GPT2), run_id="use-run", runs_dir=str(runs_dir),
                              batch_size=4, workers=1, verbose=False))
        _RUNS["run"] = (runs_dir, "use-run", train, held_out)
    return _RUNS["run"]
