"""Database URLs for display: the password never leaves this module in clear.

Pure standard library, so the command can name a database without importing SQLAlchemy.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["DEFAULT_SQLITE_URL", "display_url", "is_sqlite_url", "redact_secrets"]

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./qxdb.sqlite3"
_MASK = "***"
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (also in the query string)."""
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


def password_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        secrets = [parts.password] if parts.password else []
        secrets += [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_QUERY_KEYS and v]
    except ValueError:
        return None
    return secrets[0] if secrets else None


def redact_secrets(text: str, url: str | None) -> str:
    """Remove the URL's password (raw and percent-encoded forms) from any text."""
    if url:
        text = text.replace(url, display_url(url))
        try:
            raw = urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
        except ValueError:
            raw = ""
        for secret in {password_of(url), raw}:
            if secret and len(secret) >= 2:
                text = text.replace(secret, _MASK)
    # Any other URL-looking credential that slipped into a driver's message.
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", rf"\1:{_MASK}@", text)


def is_sqlite_url(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] == "sqlite"
