"""Ray Data's view of a corpus: one read task per shard, one row per batch of documents.

    {"batch_id": "s00003-b00000012", "docs": <pickled documents>, "num_docs": 16}

Shards, batches and their ids are planned without Ray in :mod:`katoray.text.shards`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

from katoray.config import Batching
from katoray.text.shards import Shard, encode_documents, iter_batches


def make_datasource(shards: Sequence[Shard], batching: Batching, skip_batches: Iterable[str] = ()):
    """A ``ray.data.Datasource`` over ``shards`` (one read task per shard)."""
    return _corpus_datasource_class()(list(shards), batching, frozenset(skip_batches))


_CLASS: list = []


def _corpus_datasource_class():
    # Defined on first use so importing this module does not import Ray Data (0.6 s).
    if _CLASS:
        return _CLASS[0]
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    schema = pa.schema([("batch_id", pa.string()), ("docs", pa.binary()), ("num_docs", pa.int64())])

    class CorpusDatasource(Datasource):
        """Rows of document batches; one read task per shard (see the module docstring)."""

        def __init__(self, shards: list[Shard], batching: Batching, skip: frozenset[str]) -> None:
            super().__init__()
            self.shards, self.batching, self.skip = shards, batching, skip

        def get_name(self) -> str:
            return "Corpus"

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list:
            unknown = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
            return [ReadTask(self._reader(shard), unknown, schema=schema) for shard in self.shards]

        def _reader(self, shard: Shard) -> Callable[[], Iterator]:
            batching, skip = self.batching, self.skip

            def read() -> Iterator:   # one block per batch: memory stays one batch per task
                for bid, docs in iter_batches(shard, batching, skip):
                    yield pa.table({"batch_id": [bid], "docs": [encode_documents(docs)], "num_docs": [len(docs)]},
                                   schema=schema)

            return read

    _CLASS.append(CorpusDatasource)
    return CorpusDatasource
