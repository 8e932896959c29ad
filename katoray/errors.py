"""Errors katoray raises on purpose. Each message names the input and what to do about it."""


class KatorayError(Exception):
    """Base class for katoray's own errors.

    The message is kept apart from ``args``: Ray Data appends its retry advice to the ``args``
    of an exception raised in a task ("Failed to apply UDF transform after 1/1 attempts ...
    configure DataContext ..."), which is no advice for bad input. The attribute travels with
    the exception when Ray pickles it back to the driver.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.message = str(args[0]) if args else ""

    def __str__(self) -> str:
        return self.message


class ConfigError(KatorayError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class StoreError(KatorayError):
    """A knowledge base could not be opened, read or written."""


class StoreUnreachableError(StoreError, ConnectionError):
    """A store server did not answer; raised before any training starts."""


class DocumentError(KatorayError, ValueError):
    """A document could not be segmented, tokenized or learned; the message names it."""
