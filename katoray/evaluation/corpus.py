"""A run's training documents, read again as the manifest records them (the infinity-gram's text)."""
from __future__ import annotations

from itertools import islice
from typing import Iterator

from katoray.text.corpora import CorpusError
from katoray.jobs.manifest import TrainingManifest, data_identity, identity_differences
from katoray.text.segment import Document


def training_documents(manifest: TrainingManifest) -> Iterator[Document]:
    """The documents the run trained on: its files (checked against the sizes and sha256 the
    manifest recorded), Python's docs, or its Hugging Face dataset (needs the Hub or its cache).

    Raises:
        CorpusError: the files changed or are gone since the run trained on them.
    """
    config = manifest.config
    data, limit = config.get("data"), config.get("max_samples")
    if data is not None:
        changed = identity_differences(manifest, manifest.tokenizer, data_identity(data, None))
        if changed:
            raise CorpusError(f"run {manifest.run_id}'s training text is not what it trained on any more "
                              f"({'; '.join(changed)}): restore those files to build a baseline from them")
        from katoray.text.corpora import iter_local_documents

        return iter_local_documents(data, config.get("text_field", "text"), limit)
    if config.get("dataset") == "pydoc":
        from katoray.text.corpora import pydoc_corpus

        return islice(pydoc_corpus(), limit)
    from katoray.text.corpora import StreamingDatasetLoader

    return iter(StreamingDatasetLoader().load_streaming(config["dataset"], max_samples=limit))
