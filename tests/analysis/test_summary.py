"""What a report says: histogram summaries (pure) and a run's summary from its stores (no Ray)."""
from __future__ import annotations

import random
import statistics

import pytest

from katoray.analysis.frequencies import frequency_stats, median, rank_frequency, zipf_fit
from katoray.analysis.summary import shortened, summarize_run
from katoray.generation import decode_pattern
from katoray.jobs import TrainingManifest


def test_median_equals_statistics_median():
    rng = random.Random(5)
    for _ in range(300):
        values = [rng.randint(1, 9) for _ in range(rng.randint(1, 12))]
        histogram = {f: values.count(f) for f in set(values)}
        assert median(histogram) == statistics.median(values)
    stats = frequency_stats({1: 3, 4: 1})
    assert (stats["total_patterns"], stats["total_frequency"], stats["median_frequency"]) == (4, 7, 1.0)
    assert frequency_stats({})["avg_frequency"] == 0.0


def test_zipf_fit_recovers_a_power_law():
    # f(r) = 1000 r^-1.3, one pattern per rank: the fit gives the exponent back.
    histogram: dict[int, int] = {}
    for rank in range(1, 200):
        frequency = round(1000 * rank ** -1.3)
        histogram[frequency] = histogram.get(frequency, 0) + 1
    assert rank_frequency({5: 2, 9: 1, 1: 4}) == [(1, 9), (2, 5), (4, 1)]
    assert zipf_fit(histogram).exponent == pytest.approx(1.3, abs=0.05)
    assert zipf_fit({1: 500}) is None


def test_summary_reads_the_stores(learner_run):
    manifest, learner = learner_run
    summary = summarize_run(manifest, top_n=3)
    node0, node1 = summary.levels
    assert (node0.node, node0.patterns, node1.patterns) == ("node0", learner.kbs[0].count(), learner.kbs[1].count())
    assert node0.total_frequency == sum(r.frequency for r in learner.kbs[0].iter_patterns())
    assert node0.reuse_rate == 0.25 and node1.reuse_rate is None and node0.size_on_disk > 0
    assert node0.zipf is not None and 0 < node0.zipf.exponent < 2
    best = learner.kbs[0].most_frequent(1)[0]
    tokenizer = learner.token_processor.tokenizer
    assert node0.top[0].text == decode_pattern(learner.kbs, 0, best.name, tokenizer) and node0.top[0].text.strip()
    assert node1.top[0].text == decode_pattern(learner.kbs, 1, node1.top[0].name, tokenizer)
    assert summary.notes == [] and summary.info["chunk_sizes"] == [4, 4]


def test_a_tokenizer_that_cannot_be_loaded_is_said_and_pieces_are_shown(learner_run, tmp_path):
    manifest, learner = learner_run
    gone = TrainingManifest.from_dict({**manifest.to_dict(), "tokenizer": {"name": str(tmp_path / "gone")}})
    summary = summarize_run(gone, top_n=1)
    assert len(summary.notes) == 1 and "could not be loaded here" in summary.notes[0]
    record = learner.kbs[0].get_pattern(summary.levels[0].top[0].name)
    assert summary.levels[0].top[0].text == " ".join(s for event in record.pattern_data for s in event)


def test_shortened_says_how_much_is_left():
    assert shortened("abc", 5) == "abc" and shortened("abcdefgh", 3) == "abc… (5 more characters)"
