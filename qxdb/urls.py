"""Database URLs for display: the password never leaves this module in clear.

Pure standard library, so the command can name a database without importing SQLAlchemy.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["DEFAULT_SQLITE_URL", "backend_of", "display_url", "is_sqlite_url", "redact_secrets"]

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./qxdb.sqlite3"
_MASK = "***"
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})
# The user information as SQLAlchemy's make_url reads it: the password runs to the first
# "@" and may hold "/", "?" or "#" unencoded. urlsplit would end the netloc at such a
# character and leave the password in clear, so it is masked this way first.
_SA_USERINFO = re.compile(r"^(?P<head>[\w+]+://[^:/@]*:)(?P<password>[^@]*)@")


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (also in the query string)."""
    url = _SA_USERINFO.sub(rf"\g<head>{_MASK}@", url, count=1)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{_MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, _MASK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret; urlunsplit would also drop the // of sqlite:///path
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_of(url: str) -> set[str]:
    """Every spelling of the URL's passwords that could appear in a message."""
    found: set[str] = set()
    match = _SA_USERINFO.match(url)
    if match:
        found.add(match["password"])
    try:
        parts = urlsplit(url)
        found.add(parts.netloc.rpartition("@")[0].partition(":")[2])
        found.update(v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_QUERY_KEYS)
    except ValueError:
        pass  # unparseable: the password as SQLAlchemy reads it is still covered above
    # Drivers see (and may echo) the percent-decoded password.
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if len(secret) >= 2}


def redact_secrets(text: str, url: str | None) -> str:
    """Remove the URL's password (raw and percent-encoded forms) from any text."""
    if url:
        text = text.replace(url, display_url(url))
        # Longest first, so a password that contains another spelling is masked whole.
        for secret in sorted(_secrets_of(url), key=len, reverse=True):
            text = text.replace(secret, _MASK)
    # Any other URL-looking credential that slipped into a driver's message.
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", rf"\1:{_MASK}@", text)


def backend_of(url: str) -> str:
    """The database of a URL without its driver: ``postgresql+asyncpg://…`` -> ``postgresql``."""
    return url.split(":", 1)[0].split("+", 1)[0]


def is_sqlite_url(url: str) -> bool:
    return backend_of(url) == "sqlite"
