"""Segmentation: documents -> sections -> paragraphs -> pieces (and sentences, in structure mode).

Pure functions over strings. Rules, for every method:
- A paragraph ends at a blank line (one or more lines holding only whitespace). Each paragraph is
  stripped of the whitespace at its two ends; the lines inside it are kept as they are.
- ``simple``: the whole document is one section (title "").
- ``article``: a section starts at a markdown heading ('#' .. '######' and a space), a numbered
  heading ('1. Title', '2.3 Title': a dot in the number, at most ~100 characters, not ending in
  '.', '!', '?', ',', ';' or ':', so '1. Buy milk.' stays a list item), or 'Section N'.
- ``book``: a chapter starts at 'CHAPTER 12', 'Chapter XII' or 'Chapter Twelve' (any case;
  number words up to ninety-nine), optionally followed by a separator and a title
  ('CHAPTER I. Loomings.'); 'Chapter 3 of this book ...' is not a heading.
- A heading is a whole line; it becomes the section's title (stripped) and is not part of its
  paragraphs. Text before the first heading forms a section titled "".
- Nothing is truncated. Paragraphs shorter than ``min_chars`` characters (default 1: keep every
  non-empty paragraph) are dropped and counted in ``Segmented.dropped_short``; whitespace that
  belongs to no paragraph (e.g. a whitespace-only document) is counted in ``dropped_empty``.
- Nothing else is lost either: each paragraph keeps the text before it since the previous one
  (``Section.leads``: blank lines, headings, the whitespace its two ends were stripped of) and the
  document keeps what follows its last paragraph (``Segmented.tail``), so
  ``Segmented.text()`` is the document's text less the dropped short paragraphs. Training feeds
  these separators to node0 as tokens (``hierarchy.prepare``), so unravelled text keeps them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple, Sequence

from katoray.config import MODES, SEGMENT_METHODS
from katoray.errors import ConfigError
from katoray.text.tokenizers import TextTokenizer, ends_sentence, is_closer, load_tokenizer

_MODE_ALIASES = {"sentences": "structure"}   # kato-lm's name for structure mode
# The symbol training appends to a document's token stream (``hierarchy.prepare``), so the
# hierarchy learns where documents end (generation stops there). No tokenizer produces it as a
# piece (none has it in its vocabulary, and byte-level splitting cuts it at '<|'), and decoding
# drops it: it is not text.
END_OF_DOCUMENT = "<|end of document|>"

_CLOSER_CHARS = frozenset("\"')]}”’»\ufffd")
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")

_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_NUMBER = rf"(?:\d+|[ivxlcdm]+|(?:{_TENS})(?:[- ]?(?:{_UNITS}))?|{_TEENS}|{_UNITS}|one hundred)"
# An optional title after the number must follow a separator: 'CHAPTER I. Loomings.'.
_TITLE_TAIL = r"(?:[^\S\n]*[.:\-–—][^\n]*)?"
_CHAPTER = re.compile(rf"^[^\S\n]*chapter[^\S\n]+{_NUMBER}\b{_TITLE_TAIL}[^\S\n]*$", re.I | re.M)
_ARTICLE = re.compile(
    r"^[^\S\n]*(?:"
    r"#{1,6}[^\S\n]+\S[^\n]*"                                    # '## Methods'
    rf"|section[^\S\n]+(?:\d+(?:\.\d+)*|[ivxlcdm]+)\b{_TITLE_TAIL}"  # 'Section 3', 'SECTION IV: X'
    r"|(?:\d+\.)+\d*[^\S\n]+\S[^\n]{0,100}"                       # '1. Title', '2.3 Title'
    r")[^\S\n]*$", re.I | re.M)
_HEADINGS = {"article": _ARTICLE, "book": _CHAPTER}


@dataclass(frozen=True)
class Document:
    """One unit of training text: a book, an article, a dataset row."""

    text: str
    doc_id: str                     # stable id, e.g. 'books/kjv.jsonl.gz#0' or 'wikitext#1234'
    source: str = ""                # where it came from (file, dataset)
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"document {self.doc_id!r}: text must be a str, "
                            f"got {type(self.text).__name__}")


@dataclass(frozen=True)
class Section:
    """A chapter or section: its heading line (or "") and its paragraphs.

    ``leads[i]`` is the document's text between the previous paragraph (of any section) and
    paragraph i: blank lines, heading lines, stripped whitespace. None: not recorded (a corpus
    given already cut into paragraphs); every lead is then "".
    """

    title: str
    paragraphs: list[str]
    leads: list[str] | None = None

    def lead(self, i: int) -> str:
        return "" if self.leads is None else self.leads[i]


@dataclass(frozen=True)
class Segmented:
    """A document cut into sections and paragraphs, with what was dropped counted."""

    document: Document
    sections: list[Section]
    dropped_empty: int = 0          # whitespace-only blocks that held no paragraph
    dropped_short: int = 0          # paragraphs shorter than min_chars
    tail: str = ""                  # the text after the last paragraph

    @property
    def num_paragraphs(self) -> int:
        return sum(len(section.paragraphs) for section in self.sections)

    def paragraphs(self) -> Iterator[str]:
        for section in self.sections:
            yield from section.paragraphs

    def parts(self) -> Iterator[str]:
        """Each paragraph's lead, then the paragraph, ..., then the tail: they concatenate to the
        document's text less the dropped short paragraphs (nothing, if it has no paragraph)."""
        if not self.num_paragraphs:
            return
        for section in self.sections:
            for i, paragraph in enumerate(section.paragraphs):
                yield section.lead(i)
                yield paragraph
        yield self.tail

    def text(self) -> str:
        return "".join(self.parts())


class Paragraphs(NamedTuple):
    paragraphs: list[str]
    dropped_empty: int
    dropped_short: int


def split_paragraphs(text: str, min_chars: int = 1) -> Paragraphs:
    """Split on blank lines; drop (and count) paragraphs shorter than ``min_chars``."""
    kept, short = _paragraph_spans(text, 0, len(text), min_chars)
    return Paragraphs([text[a:b] for a, b in kept], 0 if kept or short or not text else 1, len(short))


def _paragraph_spans(text: str, start: int, end: int, min_chars: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(kept, short): spans of the paragraphs of ``text[start:end]``, each without the whitespace
    at its two ends, and those shorter than ``min_chars``."""
    kept, short, at = [], [], start
    bounds = [(m.start(), m.end()) for m in _BLANK_LINES.finditer(text, start, end)] + [(end, end)]
    for block_end, next_start in bounds:
        block = text[at:block_end]
        first = at + len(block) - len(block.lstrip())
        last = block_end - (len(block) - len(block.rstrip()))
        if first < last:
            (kept if last - first >= min_chars else short).append((first, last))
        at = next_start
    return kept, short


def split_sections(text: str, method: str = "simple") -> list[tuple[str, str]]:
    """(title, body) per section; the heading line is the title and is not in the body."""
    return [(title, text[start:end]) for title, start, end in _section_spans(text, method)]


def _section_spans(text: str, method: str) -> list[tuple[str, int, int]]:
    """(title, body start, body end) per section."""
    _check_method(method)
    if method == "simple":
        return [("", 0, len(text))]
    parts, title, start = [], "", 0
    for match in _HEADINGS[method].finditer(text):
        if _is_heading(method, match.group(0)):
            parts.append((title, start, match.start()))
            title, start = match.group(0).strip(), match.end()
    parts.append((title, start, len(text)))
    if parts[0][0] == "" and not text[parts[0][1]:parts[0][2]].strip() and len(parts) > 1:
        parts.pop(0)                # only whitespace before the first heading
    return parts


def _is_heading(method: str, line: str) -> bool:
    # A numbered line that ends like a sentence is a list item, not a heading.
    stripped = line.strip()
    return not (method == "article" and stripped[:1].isdigit() and stripped[-1] in ".!?,;:")


def segment(document: Document | str, method: str = "simple", min_chars: int = 1) -> Segmented:
    """Cut a document into sections and paragraphs (see the module docstring for the rules).

    >>> seg = segment("CHAPTER 1\\n\\nIn the beginning.\\n\\nCHAPTER 2\\n\\nAnd.", "book")
    >>> [(s.title, s.paragraphs) for s in seg.sections]
    [('CHAPTER 1', ['In the beginning.']), ('CHAPTER 2', ['And.'])]
    >>> seg.sections[1].leads, seg.text() == seg.document.text
    (['\\n\\nCHAPTER 2\\n\\n'], True)
    """
    if isinstance(document, str):
        document = Document(document, doc_id="<text>")
    if not isinstance(min_chars, int) or min_chars < 1:
        raise ConfigError(f"min_chars must be an integer >= 1, got {min_chars!r}")
    text = document.text
    spans, empty, short = [], 0, []
    for title, start, end in _section_spans(text, method):
        kept, dropped = _paragraph_spans(text, start, end, min_chars)
        spans.append((title, kept))
        short += dropped
        empty += 1 if start < end and not kept and not dropped else 0
    sections, at = [], 0
    for title, kept in spans:
        leads = []
        for first, last in kept:
            leads.append(_text_between(text, at, first, short))
            at = last
        sections.append(Section(title, [text[a:b] for a, b in kept], leads))
    return Segmented(document, sections, empty, len(short), _text_between(text, at, len(text), short))


def _text_between(text: str, start: int, end: int, dropped: list[tuple[int, int]]) -> str:
    """``text[start:end]`` without the dropped paragraphs (sorted spans) inside it."""
    out = []
    for first, last in dropped:
        if start <= first and last <= end:
            out.append(text[start:first])
            start = last
    out.append(text[start:end])
    return "".join(out)


def tokenize_segmented(segmented: Segmented, tokenizer: TextTokenizer) -> list[list[list[str]]]:
    """Pieces per paragraph per section, with one ``tokenize_batch`` call for the document."""
    flat = tokenizer.tokenize_batch(list(segmented.paragraphs()))
    nested, at = [], 0
    for section in segmented.sections:
        nested.append(flat[at:at + len(section.paragraphs)])
        at += len(section.paragraphs)
    return nested


def chunk_pieces(pieces: Sequence[str], chunk_size: int) -> list[list[str]]:
    """Consecutive runs of ``chunk_size`` pieces; the last run may be shorter (never dropped)."""
    return [list(pieces[i:i + chunk_size]) for i in range(0, len(pieces), chunk_size)]


def split_sentences(pieces: Sequence[str], tokenizer: TextTokenizer) -> list[list[str]]:
    """Cut a piece stream into sentences, the tokenizer's way.

    A sentence ends after '.', '!' or '?' and any closing quotes or brackets (in the same piece
    or in the next ones, even when a closing quote spans two byte-level pieces) when the next
    piece starts a new word (``TextTokenizer.starts_word``). Abbreviations such as 'Mr.'
    therefore end a sentence too. No piece is dropped: the sentences concatenate to ``pieces``.
    """
    sentences: list[list[str]] = []
    current: list[str] = []
    ended = False                   # current has its final mark, and only closers after it
    tail: list[str] = []            # pieces after the mark
    for piece in pieces:
        if ended and tokenizer.starts_word(piece) and not is_closer(piece):
            sentences.append(current)
            current, ended = [], False
        current.append(piece)
        if ends_sentence(piece):
            ended, tail = True, []
        elif ended:
            tail.append(piece)
            ended = _only_closers(tokenizer.decode(tail))
    if current:
        sentences.append(current)
    return sentences


def _only_closers(text: str) -> bool:
    # U+FFFD: a character whose bytes are not all there yet (GPT-2 splits '”' in two pieces).
    return all(char in _CLOSER_CHARS for char in text)


class CorpusSegmenter:
    """The notebook's segmenter: text -> kato-lm-shaped dict, built on the functions above.

    Each paragraph becomes ``{"text", "tokens", "chunks"}`` in chunking mode, or
    ``{"text", "tokens", "sentences"}`` in structure mode. Unlike kato-lm nothing is truncated,
    short paragraphs and sentences are kept, and a short last chunk stays as it is.
    """

    def __init__(self, tokenizer: TextTokenizer | str | None = None, mode: str = "chunking",
                 chunk_size: int = 8, min_chars: int = 1) -> None:
        mode = _MODE_ALIASES.get(mode, mode)
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(chunk_size, int) or chunk_size < 2:
            raise ConfigError(f"chunk_size must be an integer >= 2 (KATO learns nothing "
                              f"shorter), got {chunk_size!r}")
        if not isinstance(tokenizer, TextTokenizer):
            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer, self.mode, self.chunk_size, self.min_chars = (
            tokenizer, mode, chunk_size, min_chars)

    def segment_simple_text(self, text: str, metadata: dict | None = None) -> dict:
        return self._segment(text, "simple", metadata or {}, with_author=False)

    def segment_article(self, text: str, article_metadata: dict | None = None) -> dict:
        return self._segment(text, "article", article_metadata or {}, with_author=True)

    def segment_book(self, text: str, book_metadata: dict | None = None) -> dict:
        return self._segment(text, "book", book_metadata or {}, with_author=True)

    def _segment(self, text: str, method: str, metadata: dict, with_author: bool) -> dict:
        seg = segment(Document(text, doc_id=str(metadata.get("doc_id", "<text>"))),
                      method, self.min_chars)
        pieces = tokenize_segmented(seg, self.tokenizer)
        chapters = [self._chapter(section, tokens) for section, tokens in zip(seg.sections, pieces)]
        result = {"title": metadata.get("title", "Untitled Text")}
        if with_author or "author" in metadata:
            result["author"] = metadata.get("author", "Unknown")
        result.update(chapters=chapters, metadata=dict(metadata),
                      stats={"dropped_empty": seg.dropped_empty,
                             "dropped_short": seg.dropped_short})
        return result

    def _chapter(self, section: Section, tokens: list[list[str]]) -> dict:
        return {"title": section.title or "Main Content",
                "paragraphs": [self._paragraph(p, t) for p, t in zip(section.paragraphs, tokens)]}

    def _paragraph(self, text: str, tokens: list[str]) -> dict:
        if self.mode == "chunking":
            return {"text": text, "tokens": tokens, "chunks": chunk_pieces(tokens, self.chunk_size)}
        sentences = split_sentences(tokens, self.tokenizer)
        return {"text": text, "tokens": tokens, "sentences": sentences}


def _check_method(method: str) -> None:
    if method not in SEGMENT_METHODS:
        raise ConfigError(f"segment method must be one of {SEGMENT_METHODS}, got {method!r}")
