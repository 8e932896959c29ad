"""Documents -> tokenized documents the map consumes: segment, tokenize (one batch call), split
sentences in structure mode. Loads the tokenizer once; used by the sequential path, by every
trainer actor, and by whatever reads a trained hierarchy (its contexts are tokenized the same way).

The token stream is lossless: the text between paragraphs (blank lines, headings: each
paragraph's ``Section.leads``) and after the last one (``Segmented.tail``) is tokenized with the
paragraphs, as texts of its own, and goes into the stream where it stood; a complete document
ends with ``END_OF_DOCUMENT``. So a byte-level tokenizer's pieces (GPT-2's, the built-in
default) decode back to the document's text, and unravelling a document's patterns gives it back
(except what KATO cannot learn: a remainder of fewer than 2 symbols at a level). Tokenizers that
drop whitespace (WordPiece) tokenize a separator to nothing. In structure mode a lead goes in
front of the paragraph's first sentence, the tail and the end at the back of its last one.
"""
from __future__ import annotations

from typing import Sequence

from katoray.config import MODES, SEGMENT_METHODS
from katoray.errors import DocumentError
from katoray.hierarchy.mapping import TokenizedDocument
from katoray.text.segment import END_OF_DOCUMENT, Document, Segmented, segment, split_sentences
from katoray.text.tokenizers import TextTokenizer, load_tokenizer


class DocumentPreparer:
    """Segment and tokenize batches of documents for one hierarchy configuration."""

    def __init__(self, tokenizer: str | TextTokenizer | None = None, segment_method: str = "simple",
                 mode: str = "chunking", min_chars: int = 1) -> None:
        if segment_method not in SEGMENT_METHODS:
            raise DocumentError(f"segment_method must be one of {SEGMENT_METHODS}, got {segment_method!r}")
        if mode not in MODES:
            raise DocumentError(f"mode must be one of {MODES}, got {mode!r}")
        self.tokenizer = tokenizer if isinstance(tokenizer, TextTokenizer) else load_tokenizer(tokenizer)
        self.segment_method = segment_method
        self.mode = mode
        self.min_chars = min_chars

    def prepare(self, docs: Sequence[Document], complete: bool = True) -> list[TokenizedDocument]:
        """Tokenized documents, in order. An error names the document that caused it.

        ``complete``: each is a whole document (its stream ends with ``END_OF_DOCUMENT``); False
        for a text that goes on, such as a context to predict from.
        """
        return self.prepare_segmented([self.segment_document(doc) for doc in docs], complete)

    def prepare_segmented(self, segmented: Sequence[Segmented], complete: bool = True) -> list[TokenizedDocument]:
        """Tokenize documents already cut into sections and paragraphs (leads, paragraph, ...,
        tail: ``Segmented.parts``, in one tokenizer call)."""
        texts = [part for seg in segmented for part in seg.parts()]
        try:
            pieces = self.tokenizer.tokenize_batch(texts)
        except Exception:
            self._find_bad_document(segmented)
            raise
        out, at = [], 0
        for seg in segmented:
            n = 2 * seg.num_paragraphs + 1 if seg.num_paragraphs else 0
            out.append(self._tokenized(seg, pieces[at:at + n], complete))
            at += n
        return out

    def segment_document(self, doc: Document) -> Segmented:
        try:
            return segment(doc, self.segment_method, self.min_chars)
        except Exception as err:
            raise DocumentError(f"document {doc.doc_id!r} ({doc.source or 'no source'}) could not be "
                                f"segmented: {err}") from err

    def _tokenized(self, seg: Segmented, pieces: list[list[str]], complete: bool) -> TokenizedDocument:
        """``pieces``: those of ``seg.parts()`` (lead, paragraph, lead, paragraph, ..., tail)."""
        sections, at = [], 0
        for section in seg.sections:
            paragraphs = []
            for _ in section.paragraphs:
                lead, text = pieces[at], pieces[at + 1]
                at += 2
                sentences = split_sentences(text, self.tokenizer) if self.mode == "structure" else [text]
                paragraphs.append(_with_lead(lead, sentences))
            sections.append(paragraphs)
        if at:   # the document has a paragraph: its last sentence takes the tail and the end
            last = sections[-1 - next(i for i, s in enumerate(reversed(sections)) if s)][-1]
            last[-1] = last[-1] + pieces[at] + ([END_OF_DOCUMENT] if complete else [])
        doc = seg.document
        meta = {"source": doc.source, "doc_id": doc.doc_id, "title": doc.title}
        return TokenizedDocument(doc.doc_id, sections, meta, seg.dropped_empty + seg.dropped_short)

    def _find_bad_document(self, segmented: Sequence[Segmented]) -> None:
        """Tokenize document by document to name the one that fails (only on the error path)."""
        for seg in segmented:
            try:
                self.tokenizer.tokenize_batch(list(seg.paragraphs()))
            except Exception as err:
                doc = seg.document
                raise DocumentError(f"document {doc.doc_id!r} ({doc.source or 'no source'}) could not be "
                                    f"tokenized by {self.tokenizer.name!r}: {err}") from err


def _with_lead(lead: list[str], sentences: list[list[str]]) -> list[list[str]]:
    """The paragraph's sentences with the pieces of the text before it in front of the first."""
    if not sentences:
        return [list(lead)]
    return [lead + sentences[0], *sentences[1:]] if lead else sentences
