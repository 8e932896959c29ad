"""katoray: hierarchies of KATO pattern learners, trained on text in a single pass, on Ray."""
from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash, pattern_name, strip_prefix
from katoray.session import KatoSession

__version__ = "0.1.0"

__all__ = ["KatoSession", "SessionConfig", "pattern_name", "pattern_hash", "strip_prefix", "__version__"]
