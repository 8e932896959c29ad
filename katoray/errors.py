"""Errors katoray raises on purpose. Each message names the input and what to do about it."""


class KatorayError(Exception):
    """Base class for katoray's own errors."""


class ConfigError(KatorayError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class StoreError(KatorayError):
    """A knowledge base could not be opened, read or written."""


class StoreUnreachableError(StoreError, ConnectionError):
    """A store server did not answer; raised before any training starts."""


class DocumentError(KatorayError, ValueError):
    """A document could not be segmented, tokenized or learned; the message names it."""
