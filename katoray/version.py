"""katoray's version (a leaf module: the manifest and the command line read it without importing the package)."""
__version__ = "0.1.0"
