"""katoray: hierarchies of KATO pattern learners, trained on text in a single pass, on Ray."""
from katoray.engine.naming import pattern_name, pattern_hash, strip_prefix

__version__ = "0.1.0"

__all__ = ["pattern_name", "pattern_hash", "strip_prefix", "__version__"]
