"""The Ray runtime: node actors per level, a mapper pool fed by Ray Data, the training driver.

    RunSpec (katoray.runspec) --run_training--> node actors (NodeActor) + mapper pool (HierarchyMapper)

Importing this package does not import Ray; the functions below do when called. They import on
first use (``katoray.util.lazy_exports``), so a node actor loads only ``runtime.node``'s needs.
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.runtime.node": ["NodeActor", "attach_nodes", "start_nodes", "stop_nodes"],
    "katoray.runtime.driver": ["run_training"],
})
del lazy_exports
