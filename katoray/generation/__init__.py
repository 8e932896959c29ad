"""Top-down generation: unravel a pattern at any level back to node0 tokens, then to text."""
from katoray.generation.unravel import decode_pattern, unravel

__all__ = ["unravel", "decode_pattern"]
