"""The hierarchy: configuration, the pure map, the notebook's learner and sequential training."""
from katoray.hierarchy.config import HierarchicalNode, HierarchyConfig
from katoray.hierarchy.learner import HierarchicalConceptLearner, TokenProcessor
from katoray.hierarchy.mapping import HierarchyDeltas, TokenizedDocument, map_documents
from katoray.hierarchy.prepare import DocumentPreparer
from katoray.hierarchy.train import train_hierarchical_single_pass

__all__ = ["HierarchicalNode", "HierarchyConfig", "HierarchicalConceptLearner", "TokenProcessor",
           "HierarchyDeltas", "TokenizedDocument", "map_documents", "DocumentPreparer",
           "train_hierarchical_single_pass"]
