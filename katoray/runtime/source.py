"""Ray Data's view of a corpus: one read task per shard, one row per batch of documents.

    {"batch_id": "s00003-b00000012", "docs": <pickled documents>, "num_docs": 16}

Shards, batches and their ids are planned without Ray in :mod:`katoray.text.shards`.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator, Sequence

from katoray.config import Batching
from katoray.text.shards import Shard, encode_documents, iter_batches


def make_datasource(shards: Sequence[Shard], batching: Batching, skip_batches: Iterable[str] = ()):
    """A ``ray.data.Datasource`` over ``shards`` (one read task per shard)."""
    return _corpus_datasource_class()(list(shards), batching, frozenset(skip_batches))


def start_reader_process():
    """Start a Ray worker process for the run's read tasks now, with what they import loaded.

    Ray Data schedules the first read task only once the mapper pool is up, and a fresh worker
    process then takes about 1.5 s to start and import Ray Data and pyarrow before the first
    batch is read. This task (same CPU request as a read task) starts one while the node actors
    and the pool start; Ray keeps a finished task's process and hands it the read task. Returns
    the task's reference (its value: that process's pid; nothing waits for it).
    """
    import ray

    from katoray.runtime.options import READ_OPTIONS

    return ray.remote(**READ_OPTIONS)(_import_reader).remote()


def _import_reader() -> int:
    import pyarrow  # noqa: F401
    import ray.data  # noqa: F401

    _corpus_datasource_class()
    return os.getpid()


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
