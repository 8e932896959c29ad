"""The per-word cache gives exactly the tokenizer's own pieces, and is used only where it can."""
from __future__ import annotations

import gzip
import json
import pickle
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.text import load_tokenizer
from katoray.text.word_cache import WordCache, split_words

# Characters around which the GPT-2 regex decides differently: every kind of space (including
# the \x1c-\x1f separators Python calls space and Unicode does not), letters, digits,
# punctuation, apostrophes of contractions, marks, emoji, the added token's brackets.
ALPHABET = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2009\u200b\u2028\u202f\u3000" \
           "aZé日ß1٣²½.,;'\"’-()<>|!?sdtlmvre\u0301\U0001F389"


@pytest.fixture(params=["gpt2", "default"])
def tokenizer(request, gpt2, default):
    return gpt2 if request.param == "gpt2" else default


def _fresh(tokenizer):
    """A copy with an empty cache (pickling leaves the cache behind)."""
    return pickle.loads(pickle.dumps(tokenizer))


def test_split_words_cuts_before_a_space_and_a_non_space():
    assert split_words("In the  beginning,\n God") == ["In", " the ", " beginning,\n", " God"]
    assert "".join(split_words(" a\t b  \xa0c ")) == " a\t b  \xa0c "


def test_every_bmp_code_point_after_a_space(tokenizer):
    texts = [f"a {c}b  {c} {c}{c} 's {c}'s x\t {c}\n {c}" for c in map(chr, range(0x10000))
             if not 0xD800 <= ord(c) <= 0xDFFF]
    assert tokenizer._word_cache is not None
    assert _fresh(tokenizer).tokenize_batch(texts) == tokenizer.tokenize_batch_direct(texts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=ALPHABET, max_size=40), min_size=1, max_size=8))
def test_random_text_warm_cache(gpt2, texts):
    # One tokenizer across examples: its cache holds words of earlier ones.
    assert gpt2.tokenize_batch(texts) == gpt2.tokenize_batch_direct(texts)


def test_the_kjv_with_a_cache_that_starts_over(gpt2, kjv_books_path):
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as rows:
        books = [json.loads(line)["text"] for line in rows]
    paragraphs = [p for book in books[:10] for p in book.split("\n\n")]
    small = _fresh(gpt2)
    small._word_cache.max_bytes = 200_000   # ~1,300 words: starts over many times
    sizes = []
    for i in range(0, len(paragraphs), 10):
        batch = paragraphs[i:i + 10]
        assert small.tokenize_batch(batch) == gpt2.tokenize_batch_direct(batch)
        sizes.append(len(small._word_cache))
    assert max(sizes) <= 200_000 // 200   # an entry costs at least 200 bytes as counted
    assert any(later < earlier for earlier, later in zip(sizes, sizes[1:]))   # it started over


@pytest.mark.parametrize("method", ["simple", "book"])
def test_the_texts_training_tokenizes_separators_included(tokenizer, kjv_books_path, method):
    """What training sends the tokenizer (``Segmented.parts``: each paragraph and the text
    between paragraphs, whitespace-only or a heading) gets the tokenizer's own pieces."""
    from katoray.text.segment import segment

    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as rows:
        books = [json.loads(line)["text"] for line in rows][:4]
    parts = [part for book in books for part in segment(book, method).parts()]
    assert "" in parts and any(part.startswith("\n\n") for part in parts)
    fresh = _fresh(tokenizer)
    assert fresh.tokenize_batch(parts) == tokenizer.tokenize_batch_direct(parts)
    assert fresh.tokenize_batch(parts) == tokenizer.tokenize_batch_direct(parts)   # warm
    assert tokenizer.decode([p for pieces in fresh.tokenize_batch(parts) for p in pieces]) == "".join(books)


def test_concurrent_calls_while_the_cache_starts_over(gpt2, kjv_books_path):
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as rows:
        paragraphs = json.loads(next(rows))["text"].split("\n\n")
    shared = _fresh(gpt2)
    shared._word_cache.max_bytes = 50_000
    expected = gpt2.tokenize_batch_direct(paragraphs)
    failures = []

    def work(seed):
        order = list(range(len(paragraphs)))
        random.Random(seed).shuffle(order)
        for start in range(0, len(order), 7):
            chosen = order[start:start + 7]
            got = shared.tokenize_batch([paragraphs[i] for i in chosen])
            failures.extend(i for i, pieces in zip(chosen, got) if pieces != expected[i])

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_pickled_copy_starts_with_an_empty_cache(tokenizer):
    tokenizer.tokenize_batch(["In the beginning God created the heaven and the earth."])
    assert len(tokenizer._word_cache) > 0
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert len(copy._word_cache) == 0 and copy._word_cache is not tokenizer._word_cache
    assert copy.tokenize("the earth") == tokenizer.tokenize("the earth")


def test_long_words_are_not_kept(gpt2):
    cjk = "天地之初，神創造天地。地是空虛混沌，淵面黑暗；神的靈運行在水面上。" * 5   # one "word"
    url = "https://example.org/" + "a" * 100
    fresh = _fresh(gpt2)
    texts = [cjk, f"see {url} and the rest"]
    assert fresh.tokenize_batch(texts) == gpt2.tokenize_batch_direct(texts)
    cache = fresh._word_cache
    assert cjk not in cache._first and url not in cache._after and "see" in cache._first
    assert "rest" in cache._after and "rest" not in cache._first


def test_texts_with_added_tokens_go_whole(tmp_path, gpt2_dir):
    # With a merge of two spaces, cutting "a  <|endoftext|>" into words would give 'Ġ', 'Ġ':
    # the tokenizer cuts the added token out first, so the two spaces are one regex match.
    variant = _gpt2_variant(tmp_path, gpt2_dir, _merge_two_spaces)
    assert variant._word_cache is not None
    texts = ["a  <|endoftext|>", "a  b", "x<|endoftext|>  y z"]
    direct = variant.tokenize_batch_direct(texts)
    assert direct[0] == ["a", "ĠĠ", "<|endoftext|>"]
    assert variant.tokenize_batch(texts) == direct
    by_words = [p for word in split_words(texts[0]) for p in variant.tokenize_batch_direct([word])[0]]
    assert by_words != direct[0]


def _merge_two_spaces(tk):
    state = json.loads(tk.to_str())
    model = state["model"]
    model["vocab"]["ĠĠ"] = len(model["vocab"]) + 1
    merge = ["Ġ", "Ġ"] if isinstance(model["merges"][0], list) else "Ġ Ġ"
    model["merges"].insert(0, merge)
    return type(tk).from_str(json.dumps(state))


def test_results_are_new_lists(gpt2):
    first = gpt2.tokenize_batch(["the the"])[0]
    first.append("mutated")
    assert gpt2.tokenize_batch(["the the"])[0] == ["the", "Ġthe"]


def test_a_short_answer_from_the_tokenizer_is_an_error():
    cache = WordCache(lambda words: [[w] for w in words][:-1])
    with pytest.raises(RuntimeError, match="gave 1 results for 2 words"):
        cache.tokenize_batch(["x a b"])   # two words after a space


# -- tokenizers the cache would get wrong: it stays off, or takes their texts whole -----------------
def _gpt2_variant(tmp_path, gpt2_dir, change):
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(_gpt2_json(tmp_path, gpt2_dir)))
    changed = change(tk)   # a change edits the tokenizer, or returns a new one
    tk = changed if isinstance(changed, Tokenizer) else tk
    folder = tmp_path / "variant"
    folder.mkdir()
    tk.save(str(folder / "tokenizer.json"))
    return load_tokenizer(str(folder))


def _gpt2_json(tmp_path, gpt2_dir):
    path = tmp_path / "gpt2.json"
    load_tokenizer(str(gpt2_dir))._backend.save(str(path))
    return path


def _add_mask(lstrip, rstrip):
    from tokenizers import AddedToken

    return lambda tk: tk.add_special_tokens([AddedToken("<mask>", lstrip=lstrip, rstrip=rstrip)])


def _add_spaced_token(tk):
    from tokenizers import AddedToken

    tk.add_tokens([AddedToken("New York")])


@pytest.mark.parametrize("change, text", [
    (_add_mask(lstrip=True, rstrip=False), "a  <mask> b"),     # RoBERTa's <mask> takes the spaces before it
    (_add_mask(lstrip=False, rstrip=True), "a <mask> b"),      # ... or after it
    (_add_spaced_token, "to New York by  train"),              # an added token spanning two words
])
def test_texts_with_added_tokens_that_take_spaces_go_whole(tmp_path, gpt2_dir, change, text):
    variant = _gpt2_variant(tmp_path, gpt2_dir, change)
    by_words = [p for word in split_words(text) for p in variant.tokenize_batch_direct([word])[0]]
    texts = [text, "plain words around", text.upper()]
    assert variant.tokenize_batch(texts) == variant.tokenize_batch_direct(texts)
    assert variant.tokenize(text) != by_words


def _lowercase(tk):
    from tokenizers import normalizers

    tk.normalizer = normalizers.Lowercase()


def _prefix_space(tk):
    from tokenizers import pre_tokenizers

    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)


def _bpe_dropout(tk):
    state = json.loads(tk.to_str())
    state["model"]["dropout"] = 0.5
    return type(tk).from_str(json.dumps(state))


@pytest.mark.parametrize("change", [_lowercase, _prefix_space, _bpe_dropout])
def test_other_splitting_turns_it_off(tmp_path, gpt2_dir, change):
    assert _gpt2_variant(tmp_path, gpt2_dir, change)._word_cache is None


def test_an_unchanged_copy_keeps_it_on(tmp_path, gpt2_dir):
    assert _gpt2_variant(tmp_path, gpt2_dir, lambda tk: None)._word_cache is not None
