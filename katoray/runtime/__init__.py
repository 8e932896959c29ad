"""The Ray runtime: node actors per level, a mapper pool fed by Ray Data, the training driver.

Importing this package does not import Ray; the functions below do when called. They import on
first use (``katoray.util.lazy_exports``), so a node actor loads only ``runtime.node``'s needs.
"""
from katoray.util import lazy_exports

# The notebook's train_from_streaming_dataset (one worker, with checkpoint_dir / resume) is
# katoray.jobs.notebook's: durable runs are the jobs layer's business.
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.runtime.node": ["NodeActor", "attach_nodes", "start_nodes", "stop_nodes"],
    "katoray.runtime.train": ["train_from_streaming_dataset_parallel"],
})
del lazy_exports
