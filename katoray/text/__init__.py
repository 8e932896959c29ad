"""Text: tokenizers, segmentation and corpus sources (what the hierarchy consumes)."""
from katoray.text.corpora import (
    DATASETS,
    CorpusError,
    DatasetSpec,
    DatasetUnavailableError,
    DocumentStream,
    StreamingDatasetLoader,
    file_identity,
    iter_local_documents,
    pydoc_corpus,
)
from katoray.text.segment import (
    CorpusSegmenter,
    Document,
    Section,
    Segmented,
    chunk_pieces,
    segment,
    split_paragraphs,
    split_sections,
    split_sentences,
    tokenize_segmented,
)
from katoray.text.tokenizers import (
    DEFAULT_TOKENIZER,
    ByteWordTokenizer,
    HuggingFaceTokenizer,
    TextTokenizer,
    load_tokenizer,
)

__all__ = [
    "DATASETS", "CorpusError", "DatasetSpec", "DatasetUnavailableError", "DocumentStream",
    "StreamingDatasetLoader", "file_identity", "iter_local_documents", "pydoc_corpus",
    "CorpusSegmenter", "Document", "Section", "Segmented", "chunk_pieces",
    "segment", "split_paragraphs", "split_sections", "split_sentences", "tokenize_segmented",
    "DEFAULT_TOKENIZER", "ByteWordTokenizer", "HuggingFaceTokenizer", "TextTokenizer",
    "load_tokenizer",
]
