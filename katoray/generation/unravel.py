"""Unravel a level-k pattern into the node0 tokens it stands for.

A level-k pattern's symbols are ``PTRN|`` names of level k-1 patterns; following them down to
node0 gives back the token pieces the pattern was learned from (the tokenizer decodes them to
text). Names are looked up without their prefix, the bug kato-lm's notebook had. Training's
end-of-document symbol (``text.segment.END_OF_DOCUMENT``) is a symbol, not text: decoding drops it.
"""
from __future__ import annotations

from typing import Sequence

from katoray.engine.naming import strip_prefix
from katoray.errors import KatorayError
from katoray.store import KnowledgeBase
from katoray.text.segment import END_OF_DOCUMENT


def unravel(kbs: Sequence[KnowledgeBase], level: int, name: str) -> list[str]:
    """Node0 token pieces of pattern ``name`` stored at ``level`` (``kbs[i]`` is level i's KB)."""
    record = kbs[level].get_pattern(strip_prefix(name))
    if record is None:
        raise KatorayError(f"pattern {name} is not in node{level}'s knowledge base {kbs[level].kb_id} "
                           "(was it deleted by a cleanup, or is it from another run?)")
    symbols = [s for event in record.pattern_data for s in event]
    if level == 0:
        return symbols
    return [piece for child in symbols for piece in unravel(kbs, level - 1, child)]


def decode_pattern(kbs: Sequence[KnowledgeBase], level: int, name: str, tokenizer) -> str:
    """The text a pattern stands for, decoded with the tokenizer it was trained with."""
    return decode_pieces(unravel(kbs, level, name), tokenizer)


def decode_pieces(pieces: Sequence[str], tokenizer) -> str:
    """Token pieces to text, without the end-of-document symbol."""
    return tokenizer.decode([piece for piece in pieces if piece != END_OF_DOCUMENT])
