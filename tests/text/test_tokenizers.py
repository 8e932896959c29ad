"""Tokenizers on GPT-2's real files and the built-in default; HardwareAnalyzer's measured rates."""
from __future__ import annotations

import gzip
import json
import logging
import pickle
import subprocess
import sys
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.errors import ConfigError
from katoray.text import load_tokenizer
from katoray.compat.hardware import (
    DATASET_LADDER,
    TOKENS_PER_SAMPLE,
    HardwareAnalyzer,
    format_recommendations,
    recommend_dataset_configuration,
    tier_for,
)
from katoray.text.tokenizers import (
    BYTE_LEVEL,
    DEFAULT_TOKENIZER,
    SENTENCEPIECE,
    WORDPIECE,
    offline_env_var,
    probe_hub,
)

TRICKY = [
    "",
    "Hello world",
    "  leading and trailing  ",
    "repeated     spaces\tand\ttabs",
    "line one\nline two\n\n\nafter blank lines\n",
    "windows\r\nline ends\r\n",
    "ünïcödé, 日本語のテキスト, Ελληνικά, emoji 🎉👍🏽 and “curly” ‘quotes’",
    "<|endoftext|> in the middle of <|endoftext|> text",
    "digits 1234567890 and 3.14159, symbols #$%^&*()",
]
UNREACHABLE = "http://127.0.0.1:9"   # the discard port: refused at once, no network involved


@pytest.fixture(scope="module")
def genesis(kjv_books_path):
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as rows:
        return json.loads(next(rows))["text"]


@pytest.fixture(params=["gpt2", "default"])
def tokenizer(request, gpt2, default):
    return gpt2 if request.param == "gpt2" else default


def test_gpt2_pieces_are_gpt2s(gpt2, gpt2_dir, genesis):
    from transformers import AutoTokenizer

    assert gpt2.tokenize("Hello world") == ["Hello", "Ġworld"]
    reference = AutoTokenizer.from_pretrained(str(gpt2_dir))
    assert reference("Hello world")["input_ids"] == [15496, 995]
    paragraph = genesis.split("\n\n")[1]
    assert gpt2.tokenize(paragraph) == reference.tokenize(paragraph)


def test_default_is_builtin_word_pieces(default):
    assert load_tokenizer(None).name == DEFAULT_TOKENIZER == default.name
    assert default.tokenize("Hello  world.\nNext") == ["Hello", "Ġ", "Ġworld", ".", "Ċ", "Next"]
    assert default.identity()["kind"] == "builtin"


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_tricky_text(tokenizer, text):
    assert tokenizer.decode(tokenizer.tokenize(text)) == text


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_round_trip_any_text(gpt2, default, text):
    assert gpt2.decode(gpt2.tokenize(text)) == text
    assert default.decode(default.tokenize(text)) == text


def test_round_trip_whole_book(tokenizer, genesis):
    assert tokenizer.decode(tokenizer.tokenize(genesis)) == genesis


def test_batch_equals_single(tokenizer):
    texts = TRICKY[1:]
    assert tokenizer.tokenize_batch(texts) == [tokenizer.tokenize(t) for t in texts]
    assert tokenizer.tokenize_batch([]) == []


def test_no_truncation_on_100k_token_paragraph(gpt2, genesis, caplog):
    paragraph = " ".join(genesis.split("\n\n")[1::2])      # chapters' verses, no headings
    paragraph = " ".join([paragraph] * 3)                  # about 120k GPT-2 tokens, one paragraph
    assert "\n\n" not in paragraph
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.WARNING):
            pieces = gpt2.tokenize(paragraph)
    assert len(pieces) >= 100_000
    assert gpt2.decode(pieces) == paragraph
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_identity_pins_the_vocabulary(gpt2, gpt2_dir, default):
    ident = gpt2.identity()
    assert ident["vocab_size"] == 50257 and ident["path"] == str(gpt2_dir.resolve())
    assert ident["scheme"] == BYTE_LEVEL and len(ident["vocab_sha256"]) == 64
    assert load_tokenizer(str(gpt2_dir)).identity() == ident
    assert default.identity()["vocab_sha256"] != ident["vocab_sha256"]


def test_pickles_for_ray(tokenizer):
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert clone.tokenize(TRICKY[6]) == tokenizer.tokenize(TRICKY[6])
    assert clone.identity() == tokenizer.identity() and clone.scheme == tokenizer.scheme
    assert clone.decode(clone.tokenize(TRICKY[6])) == TRICKY[6]


def test_unpickling_needs_no_transformers(gpt2, genesis, tmp_path):
    """Pool actors get the driver's tokenizer pickled; loading it must not import transformers."""
    (tmp_path / "tok.pickle").write_bytes(pickle.dumps(gpt2))
    code = ("import pickle, sys; tok = pickle.load(open(sys.argv[1], 'rb')); "
            "print(len(tok.tokenize(sys.argv[2])), 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tok.pickle"), genesis[:5000]],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(gpt2.tokenize(genesis[:5000]))), "False"]


def test_a_folder_loads_once_until_its_files_change(genesis, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    def train(vocab_size):
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.train_from_iterator([genesis], trainers.BpeTrainer(vocab_size=vocab_size))
        tk.save(str(tmp_path / "tokenizer.json"))

    train(300)
    first = load_tokenizer(str(tmp_path))
    assert load_tokenizer(str(tmp_path)) is first
    time.sleep(0.01)
    train(400)   # the files changed: the folder is read again
    second = load_tokenizer(str(tmp_path))
    assert second is not first and second.identity()["vocab_sha256"] != first.identity()["vocab_sha256"]


@pytest.mark.parametrize("piece, next_piece, expected", [
    (".", "ĠThe", True), ("?", "Ċ", True), ("!", None, True), ('."', "ĠHe", True),
    (".)", "ĠAnd", True), (".", "5", False), (",", "Ġhe", False), ("Ġworld", "Ġ.", False),
])
def test_is_sentence_end_byte_level(gpt2, piece, next_piece, expected):
    assert gpt2.is_sentence_end(piece, next_piece) is expected


# -- other piece schemes: real tokenizers trained on KJV text with the tokenizers library ---------
def _save(tmp_path, tk):
    tk.save(str(tmp_path / "tokenizer.json"))
    return load_tokenizer(str(tmp_path))


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory, genesis):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    tk.train_from_iterator([genesis], trainers.WordPieceTrainer(vocab_size=800,
                                                                special_tokens=["[UNK]"]))
    return _save(tmp_path_factory.mktemp("wordpiece"), tk)


@pytest.fixture(scope="module")
def sentencepiece(tmp_path_factory, genesis):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.Unigram())
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator([genesis], trainers.UnigramTrainer(vocab_size=600, unk_token="<unk>",
                                                              special_tokens=["<unk>"]))
    return _save(tmp_path_factory.mktemp("unigram"), tk)


def test_wordpiece_scheme(wordpiece):
    assert wordpiece.scheme == WORDPIECE
    pieces = wordpiece.tokenize("And God said, Let there be lightening. And")
    assert any(p.startswith("##") for p in pieces)
    assert wordpiece.is_sentence_end(".", "and") and not wordpiece.is_sentence_end(".", "##s")


def test_sentencepiece_scheme(sentencepiece):
    assert sentencepiece.scheme == SENTENCEPIECE
    assert sentencepiece.tokenize("And God said")[0] == "▁And"
    assert sentencepiece.is_sentence_end(".", "▁And") and not sentencepiece.is_sentence_end(".", "s")
    text = "And God said, Let there be light."
    assert sentencepiece.decode(sentencepiece.tokenize(text)) == text


# -- errors --------------------------------------------------------------------------------------
def test_unknown_tokenizer_offline_fails_fast_with_ways_out():
    start = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        load_tokenizer("katoray-no-such-tokenizer")
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "'katoray-no-such-tokenizer'" in message and "HF_HUB_OFFLINE" in message
    assert "local folder" in message and DEFAULT_TOKENIZER in message


def test_unreachable_hub_fails_fast_without_offline_mode(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="did not answer") as error:
        load_tokenizer("katoray-no-such-tokenizer")
    assert time.perf_counter() - start < 10
    assert UNREACHABLE in str(error.value) and DEFAULT_TOKENIZER in str(error.value)


def test_hub_helpers(monkeypatch):
    assert "did not answer" in probe_hub(timeout=2, endpoint=UNREACHABLE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline_env_var(["HF_HUB_OFFLINE"]) == "HF_HUB_OFFLINE=1 is set"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert offline_env_var(["HF_HUB_OFFLINE"]) is None


def test_folder_without_tokenizer(tmp_path):
    (tmp_path / "notes.txt").write_text("not a tokenizer")
    with pytest.raises(ConfigError, match="does not hold a tokenizer") as error:
        load_tokenizer(str(tmp_path))
    assert "notes.txt" in str(error.value) and "tokenizer.json" in str(error.value)


def test_file_or_empty_name_is_refused(gpt2_dir):
    with pytest.raises(ConfigError, match="is a file"):
        load_tokenizer(str(gpt2_dir / "vocab.json"))
    with pytest.raises(ConfigError):
        load_tokenizer("  ")


# -- hardware --------------------------------------------------------------------------------------
def test_hardware_facts():
    hw = HardwareAnalyzer()
    assert hw.cores >= 1 and hw.memory_gb > 0 and hw.cpu
    assert hw.tier == tier_for(hw.cores, hw.memory_gb)
    assert [tier_for(64, 256), tier_for(16, 64), tier_for(8, 16), tier_for(8, 15)] == [
        "server", "high", "medium", "low"]
    info = hw.display_hardware_info(tokens_per_sec=1234.0)
    assert info == {"cpu": hw.cpu, "cores": hw.cores, "memory_gb": hw.memory_gb,
                    "tier": hw.tier, "tokens_per_sec": 1234.0}


def test_measured_throughput(gpt2):
    hw = HardwareAnalyzer()
    assert hw.measure_throughput(seconds=0.2) > 10_000
    calls = []
    rate = hw.measure_throughput(gpt2, seconds=0.05, per_document=lambda d: calls.append(d.doc_id))
    assert rate > 0 and calls and calls[0].startswith("pydoc#")
    with pytest.raises(ConfigError):
        hw.measure_throughput(seconds=0)


def test_recommendations_follow_the_rate():
    slow = recommend_dataset_configuration([300], tokens_per_sec=1000)[0]
    assert slow["dataset"] == "wikitext" and slow["samples"] == 300 * 1000 // 100
    assert slow["est_seconds"] == pytest.approx(300)
    fast = recommend_dataset_configuration([300], tokens_per_sec=1e6)[0]
    assert fast["dataset"] == "openwebtext"
    assert fast["samples"] == int(300 * 1e6 / TOKENS_PER_SAMPLE["openwebtext"])
    huge = recommend_dataset_configuration([1e9], tokens_per_sec=1e9)[0]
    assert huge["dataset"] == DATASET_LADDER[-1] and huge["samples"] == 968_000_015
    table = format_recommendations([slow, fast])
    assert "wikitext" in table and "openwebtext" in table
    with pytest.raises(ConfigError):
        recommend_dataset_configuration([300], tokens_per_sec=0)
