"""Tokenizers shared by the text tests (loaded once per module)."""
import pytest

from katoray.text import load_tokenizer


@pytest.fixture(scope="module")
def gpt2(gpt2_dir):
    """GPT-2's real tokenizer, from ../shared."""
    return load_tokenizer(str(gpt2_dir))


@pytest.fixture(scope="module")
def default():
    """The built-in katoray-bytes tokenizer (no download)."""
    return load_tokenizer()
