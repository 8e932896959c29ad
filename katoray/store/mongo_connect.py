"""Connecting to a MongoDB knowledge base: legal database names, and errors that name the host.

No message here contains the URL's password (``katoray.store.urls.scrub``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import pymongo
from pymongo.errors import ConfigurationError, ConnectionFailure, OperationFailure, PyMongoError

from katoray.errors import ConfigError, StoreError, StoreUnreachableError
from katoray.store.urls import hosts as hosts_of, safe_url, scrub

DEFAULT_TIMEOUT_S = 5.0  # server selection and connect timeout: an unreachable server fails fast
_BAD_DB_NAME_CHARS = set('/\\. "$*<>:|?\x00')


def connect(url: str, kb_id: str, timeout_s: float = DEFAULT_TIMEOUT_S,
            **client_options: Any) -> tuple[pymongo.MongoClient, str]:
    """A client that answered a ping, and the URL's hosts (for messages). Raises
    ``StoreUnreachableError`` naming the host when no server answers within ``timeout_s``;
    ``ConfigError`` for a malformed URL or database name; ``StoreError`` for refused credentials."""
    check_db_name(kb_id)
    hosts = hosts_of(url)
    timeout_ms = int(timeout_s * 1000)
    client = None
    try:
        client = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                     **client_options)
        client.admin.command("ping")
    except PyMongoError as exc:
        if client is not None:
            client.close()
        raise _open_error(url, hosts, timeout_s, exc) from None
    return client, hosts


def check_db_name(kb_id: str) -> None:
    if (not isinstance(kb_id, str) or not kb_id or len(kb_id.encode()) >= 64
            or _BAD_DB_NAME_CHARS & set(kb_id)):
        raise ConfigError(
            f"kb_id {kb_id!r} is not a legal MongoDB database name (1-63 bytes, none of "
            "/\\. \"$*<>:|? or NUL); build it with katoray.store.kb_id_for(node_id)")


def _open_error(url: str, hosts: str, timeout_s: float, exc: PyMongoError) -> Exception:
    reason = scrub(str(exc), url).split(", Timeout:", 1)[0]  # drop pymongo's topology dump
    where = f"MongoDB store at {hosts} ({safe_url(url)})"
    if isinstance(exc, ConfigurationError):
        return ConfigError(f"{where}: the URL is invalid ({type(exc).__name__}: {reason}); "
                           "use mongodb://[user:password@]host:port/")
    if isinstance(exc, OperationFailure):
        return StoreError(f"{where} refused the connection ({type(exc).__name__}, code {exc.code}): "
                          "check the user name and password in the store URL")
    if isinstance(exc, ConnectionFailure):
        return StoreUnreachableError(
            f"{where} did not answer within {timeout_s:g} s ({type(exc).__name__}: {reason}); "
            "start the server or fix the host and port in the store URL")
    return StoreError(f"{where} could not be opened ({type(exc).__name__}: {reason})")


def named_errors(method: Callable) -> Callable:
    """A store method whose driver errors become katoray's, naming the server (never its password):
    a server that stops answering mid-run is ``StoreUnreachableError``, any other failure
    ``StoreError``; the traceback of pymongo's internals stays out of the message."""
    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except PyMongoError as exc:
            raise lost_error(self.kb_id, self.hosts, exc) from None
    return wrapper


def lost_error(kb_id: str, hosts: str, exc: PyMongoError) -> Exception:
    reason = str(exc).split(", Timeout:", 1)[0].splitlines()[0][:200] if str(exc) else ""
    if isinstance(exc, ConnectionFailure):
        return StoreUnreachableError(f"MongoDB store at {hosts} stopped answering ({type(exc).__name__}) while "
                                     f"using knowledge base {kb_id!r}; start the server again (or fix the network)")
    return StoreError(f"MongoDB store at {hosts} failed on knowledge base {kb_id!r} ({type(exc).__name__}: {reason})")
