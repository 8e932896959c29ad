"""Evaluating a trained hierarchy on held-out text: coverage per level and next-token accuracy
against baselines (the most frequent token, an infinity-gram over the run's training text).

Names import on first use (``katoray.util.lazy_exports``).
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.evaluation.evaluate": ["evaluate", "sample_positions"],
    "katoray.evaluation.infinigram": ["InfiniGram"],
    "katoray.evaluation.corpus": ["training_documents"],
})
del lazy_exports
