"""``weighted_sample``: frequency-weighted draws without replacement, seeded, order-independent."""
from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from katoray.store import sampling
from katoray.store.sampling import weighted_sample


def sha1(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


def test_draw_probabilities_follow_frequency():
    # One draw from {a: 1, b: 2, c: 3}, then a second without replacement: P(c, b) = 3/6 * 2/3 = 1/3.
    pairs = [(sha1(1), 1), (sha1(2), 2), (sha1(3), 3)]
    draws = Counter(tuple(weighted_sample(pairs, 2, seed)) for seed in range(6000))
    expected = {(3, 2): 1 / 3, (3, 1): 1 / 6, (2, 3): 1 / 4, (2, 1): 1 / 12, (1, 3): 1 / 10, (1, 2): 1 / 15}
    for (x, y), p in expected.items():   # 6000 draws: a binomial sd below 37; allow 5 sd
        assert abs(draws[(sha1(x), sha1(y))] - 6000 * p) < 5 * (6000 * p * (1 - p)) ** 0.5


def test_same_sample_whatever_the_order_and_the_paging(monkeypatch):
    pairs = [(sha1(i), 1 + i % 7) for i in range(500)] + [("not-a-sha1", 5), ("x" * 40, 9), (sha1(999), 0)]
    sample = weighted_sample(pairs, 20, seed=11)
    monkeypatch.setattr(sampling, "SAMPLE_PAGE", 7)
    assert weighted_sample(reversed(pairs), 20, seed=11) == sample != weighted_sample(pairs, 20, seed=12)
    assert sorted(weighted_sample(pairs, 1000, seed=1)) == sorted(name for name, f in pairs if f > 0)
    assert weighted_sample(pairs, 0) == [] and weighted_sample([], 3) == []


@pytest.mark.parametrize("num_samples, seed", [(-1, 0), (1.5, 0), (True, 0), (1, "0"), (1, None)])
def test_bad_arguments_are_named(num_samples, seed):
    with pytest.raises(ValueError, match="num_samples|seed"):
        weighted_sample([(sha1(1), 1)], num_samples, seed)
