"""Store URLs: their scheme, hosts, passwords kept out of sight, and SQLite paths made absolute.

    memory://[name]                 a KB in this process (shared by name)
    sqlite:///rel/dir  sqlite:////abs/dir  sqlite:///file.sqlite
    mongodb://[user:password@]host:port/   mongodb+srv://...

Every caller (manifests, errors, the command line, the stores) goes through these, so a password
never reaches a log, a manifest or a message.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from katoray.errors import ConfigError

SQLITE = "sqlite:///"
MONGO_SCHEMES = ("mongodb", "mongodb+srv")


def scheme(url: str) -> str:
    """``sqlite``, ``mongodb``, ``memory``, ... (lower case); ConfigError if ``url`` is no URL."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store URL {url!r} is not a URL; use memory://, sqlite:///path/to/dir_or_file.sqlite "
                          "or mongodb://host:port/")
    return url.split("://", 1)[0].lower()


def is_mongo(url: str) -> bool:
    return isinstance(url, str) and url.lower().startswith(tuple(s + "://" for s in MONGO_SCHEMES))


def is_memory(url: str) -> bool:
    return isinstance(url, str) and url.lower().startswith("memory://")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs, manifests and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def without_userinfo(url: str) -> str:
    """The URL without ``user:password@``: two spellings of one server compare equal."""
    kind, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{kind}://{netloc.rpartition('@')[2]}{slash}{path}"


def hosts(url: str) -> str:
    """``host:port[,host:port]`` of a server URL, never its user or password."""
    rest = url.split("://", 1)[-1]
    return rest.rpartition("@")[2].split("/", 1)[0].split("?", 1)[0] or "localhost"


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) with the URL's password, raw or percent-decoded,
    replaced by ``***``."""
    userinfo = url.split("://", 1)[-1].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    for secret in {password, unquote(password)} - {""}:
        text = text.replace(secret, "***")
    return text


def safe_url(url: str) -> str:
    """The URL for a message: password redacted; scheme and hosts only if it cannot be parsed."""
    try:
        return scrub(redact_url(url), url)
    except ValueError:
        return f"{url.split('://', 1)[0]}://{hosts(url)}"


def absolute_sqlite_url(url: str, base: Path | None = None) -> str:
    """A ``sqlite:///relative`` URL made absolute against ``base`` (default: the current
    directory), because Ray workers and job drivers open it from other directories. Other URLs
    are returned as they are."""
    if url.lower().startswith(SQLITE) and not url[len(SQLITE):].startswith("/"):
        path = Path(url[len(SQLITE):]).expanduser()
        return SQLITE + (path if path.is_absolute() else (base or Path.cwd()) / path).resolve().as_posix()
    return url


def absolute_store_url(url: str) -> str:
    """A store URL any process can use: sqlite paths made absolute (checked to be a URL)."""
    scheme(url)
    return absolute_sqlite_url(url)
