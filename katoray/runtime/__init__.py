"""The Ray runtime: node actors per level, a mapper pool fed by Ray Data, the training driver.

Importing this package does not import Ray; the functions below do when called.
"""
from katoray.runtime.node import NodeActor, attach_nodes, start_nodes, stop_nodes
from katoray.runtime.train import train_from_streaming_dataset_parallel

# The notebook's train_from_streaming_dataset (one worker, with checkpoint_dir / resume) is
# katoray.jobs.notebook's: durable runs are the jobs layer's business.
__all__ = ["NodeActor", "attach_nodes", "start_nodes", "stop_nodes", "train_from_streaming_dataset_parallel"]
