"""The hierarchy: configuration, the pure map, the notebook's learner and sequential training.

Names import on first use (``katoray.util.lazy_exports``): a node actor needs the map's wire
constants, not the text layer the learner brings in.
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.hierarchy.config": ["HierarchicalNode", "HierarchyConfig"],
    "katoray.hierarchy.learner": ["HierarchicalConceptLearner", "TokenProcessor"],
    "katoray.hierarchy.mapping": ["HierarchyDeltas", "TokenizedDocument", "map_documents"],
    "katoray.hierarchy.prepare": ["DocumentPreparer"],
    "katoray.hierarchy.train": ["train_hierarchical_single_pass"],
})
del lazy_exports
