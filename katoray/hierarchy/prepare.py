"""Documents -> tokenized documents the map consumes: segment, tokenize (one batch call), split
sentences in structure mode. Loads the tokenizer once; used by the sequential path and by every
trainer actor."""
from __future__ import annotations

from typing import Sequence

from katoray.config import MODES, SEGMENT_METHODS
from katoray.errors import DocumentError
from katoray.hierarchy.mapping import TokenizedDocument
from katoray.text.segment import Document, Segmented, segment, split_sentences
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

    def prepare(self, docs: Sequence[Document]) -> list[TokenizedDocument]:
        """Tokenized documents, in order. An error names the document that caused it."""
        return self.prepare_segmented([self.segment_document(doc) for doc in docs])

    def prepare_segmented(self, segmented: Sequence[Segmented]) -> list[TokenizedDocument]:
        """Tokenize documents already cut into sections and paragraphs."""
        texts = [p for seg in segmented for p in seg.paragraphs()]
        try:
            pieces = self.tokenizer.tokenize_batch(texts)
        except Exception:
            self._find_bad_document(segmented)
            raise
        out, at = [], 0
        for seg in segmented:
            n = seg.num_paragraphs
            out.append(self._tokenized(seg, pieces[at:at + n]))
            at += n
        return out

    def segment_document(self, doc: Document) -> Segmented:
        try:
            return segment(doc, self.segment_method, self.min_chars)
        except Exception as err:
            raise DocumentError(f"document {doc.doc_id!r} ({doc.source or 'no source'}) could not be "
                                f"segmented: {err}") from err

    def _tokenized(self, seg: Segmented, pieces: list[list[str]]) -> TokenizedDocument:
        sections, at = [], 0
        for section in seg.sections:
            paragraphs = pieces[at:at + len(section.paragraphs)]
            at += len(section.paragraphs)
            if self.mode == "structure":
                sections.append([split_sentences(p, self.tokenizer) for p in paragraphs])
            else:
                sections.append([[p] for p in paragraphs])
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
