"""Using a trained hierarchy: ``open_run`` and its ``Hierarchy`` handle (predict, next tokens,
generate, decode), the next-token decoder and the indexes it reads.

Names import on first use (``katoray.util.lazy_exports``): numpy and the text layer load only
when a run is opened.
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.model.run": ["open_run", "Hierarchy"],
    "katoray.model.decoder": ["NextTokenDecoder"],
    "katoray.model.generate": ["Generation", "Span"],
})
del lazy_exports
