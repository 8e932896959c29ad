"""The hierarchy's pure core: documents -> tokenized documents -> what each level learns.

``prepare`` segments and tokenizes; ``mapping`` maps tokenized documents to per-level deltas that
add up (the one idea that makes katoray fast); ``sessions`` drives KATO sessions level by level
instead (the reference the map is checked against, and the path for remote KATO servers). The
notebook's learner and sequential trainer are in ``katoray.compat``.

Names import on first use (``katoray.util.lazy_exports``): a node actor needs the map's wire
constants, not the text layer the preparer brings in.
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.hierarchy.mapping": ["HierarchyDeltas", "TokenizedDocument", "map_documents"],
    "katoray.hierarchy.prepare": ["DocumentPreparer"],
    "katoray.hierarchy.sessions": ["SessionHierarchy"],
})
del lazy_exports
