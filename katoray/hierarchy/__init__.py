"""The hierarchy: configuration, the pure map, the notebook's learner and sequential training.

Names import on first use (``katoray.util.lazy_exports``): a node actor needs the map's wire
constants, not the text layer the learner brings in.
"""
from katoray.util import lazy_exports

_LAZY = {
    "HierarchicalNode": "katoray.hierarchy.config",
    "HierarchyConfig": "katoray.hierarchy.config",
    "HierarchicalConceptLearner": "katoray.hierarchy.learner",
    "TokenProcessor": "katoray.hierarchy.learner",
    "HierarchyDeltas": "katoray.hierarchy.mapping",
    "TokenizedDocument": "katoray.hierarchy.mapping",
    "map_documents": "katoray.hierarchy.mapping",
    "DocumentPreparer": "katoray.hierarchy.prepare",
    "train_hierarchical_single_pass": "katoray.hierarchy.train",
}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
del lazy_exports
