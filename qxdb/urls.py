"""Database and broker URLs: how people type them, and how they are shown.

Pure standard library, so the command can name a database without importing SQLAlchemy.

Secrets are hidden by the URL's structure, never by searching the text for the password:
the user information runs to the *last* ``@`` of the URL (an unencoded ``@``, ``/``, ``?``
or ``#`` in a password must not end it early), its password field is masked, and the
scheme, user, host and database are left exactly as written. A password equal to the
user name therefore hides nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

__all__ = [
    "DEFAULT_SQLITE_URL",
    "NATS_SCHEMES",
    "async_driver_url",
    "backend_of",
    "check_nats_url",
    "display_nats_url",
    "display_url",
    "is_sqlite_url",
    "is_utf8_text",
    "printable",
    "redact_secrets",
    "split_nats_servers",
    "sqlite_file",
]

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./qxdb.sqlite3"
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_MASK = "***"
_SECRET_QUERY_KEYS = frozenset(
    {"password", "passwd", "pwd", "sslpassword", "token", "auth_token", "nkey", "secret"}
)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<rest>.*)$", re.DOTALL)
# The start of a URL typed without its "://" (postgresql//…, postgresql:/…): a scheme
# followed by slashes. Without slashes, "name:" may as well be a user name.
_LOOSE_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*:?/+)(?P<rest>.*)$", re.DOTALL)
# A URL inside free text (a driver's message): it runs to whitespace or a closing quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][\w+.-]*://[^\s'\"<>]*")
# The async drivers qxdb connects with, for URLs typed without one (libpq style).
_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def _mask_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        key, eq, _ = pair.partition("=")
        pairs.append(
            f"{key}={_MASK}" if eq and unquote(key).lower() in _SECRET_QUERY_KEYS else pair
        )
    return "&".join(pairs)


def _split_scheme(url: str) -> tuple[str, str]:
    """``(scheme and separator, rest)``; a malformed URL keeps its user information (and so
    its password) in ``rest`` too, so it is masked by the same rule as a well-formed one."""
    match = _SCHEME.match(url)
    if match is not None:
        return f"{match['scheme']}://", match["rest"]
    loose = _LOOSE_SCHEME.match(url)
    if loose is not None:
        return loose["scheme"], loose["rest"]
    return "", url


def _display(url: str, *, bare_user_is_secret: bool) -> str:
    scheme, rest = _split_scheme(url)
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        hidden = _MASK if bare_user_is_secret else user
        userinfo = f"{user}:{_MASK}" if colon else hidden
        rest = f"{userinfo}@{rest[at + 1 :]}"
    head, question, query = rest.partition("?")
    if question:
        rest = f"{head}?{_mask_query(query)}"
    return f"{scheme}{rest}"


def printable(text: str) -> str:
    """``text`` with what cannot be written as UTF-8 (a lone surrogate: the undecodable
    byte of a command-line argument) spelled as a backslash escape, so printing it never
    fails."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_utf8_text(text: str) -> bool:
    """Whether ``text`` can be sent as UTF-8 (no lone surrogate from an undecodable byte)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_url(url: str) -> str:
    """The URL with its password (and secret query values) replaced by ``***``.

    A NATS URL's bare user part is a token (``nats://TOKEN@host``) and is masked too;
    a database URL's bare user part is a user name and is kept. The result is always
    printable (see :func:`printable`).
    """
    if "," in url and backend_of(url) in NATS_SCHEMES:
        return display_nats_url(url)
    return printable(_display(url, bare_user_is_secret=backend_of(url) in NATS_SCHEMES))


def split_nats_servers(value: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` (a cluster, as people type it) as a list of servers."""
    return [part.strip() for part in value.split(",") if part.strip()]


def check_nats_url(value: str, *, what: str = "NATS URL") -> list[str]:
    """The servers of a ``--nats-url`` (one, or a comma-separated cluster), or a
    :class:`~qxdb.errors.ValidationError` that echoes no token or password.

    A URL nats-py cannot use is bad input, not an unreachable broker: say so before
    connecting."""
    from urllib.parse import urlsplit

    from qxdb.errors import ValidationError

    servers = [part.strip() for part in value.split(",")] if isinstance(value, str) else []
    valid = bool(servers)
    for server in servers:
        try:
            parts = urlsplit(server)
            valid = valid and parts.scheme in NATS_SCHEMES and bool(parts.hostname)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            valid = False
    if not valid:
        # Whatever stands before @ may be a password or a NATS token: never echo it.
        shown = re.sub(r"//[^@/]*@", "//***@", str(value).strip())
        raise ValidationError(
            f"invalid {what} {shown!r}: expected nats://host:4222 (or tls://, ws://, "
            "wss://), or several such servers separated by commas"
        )
    return servers


def display_nats_url(value: str) -> str:
    """One NATS server URL or a comma-separated list, tokens and passwords masked."""
    return printable(
        ",".join(_display(part, bare_user_is_secret=True) for part in split_nats_servers(value))
    )


def _password_of(url: str) -> tuple[str, str] | None:
    """``(user, password)`` as the URL's structure holds them, or ``None``."""
    rest = _split_scheme(url)[1]
    at = rest.rfind("@")
    if at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    if not colon:
        # nats://TOKEN@host: the bare user part is the secret.
        return ("", user) if backend_of(url) in NATS_SCHEMES else None
    return user, password


def _secrets_of(url: str) -> set[str]:
    """Every spelling of the URL's secrets that a driver could echo in free text."""
    found: set[str] = set()
    for part in split_nats_servers(url) if backend_of(url) in NATS_SCHEMES else [url]:
        pair = _password_of(part)
        if pair is not None:
            found.add(pair[1])
        query = part.rpartition("@")[2].partition("?")[2]
        for item in query.split("&") if query else ():
            key, _, value = item.partition("=")
            if unquote(key).lower() in _SECRET_QUERY_KEYS:
                found.add(value)
    # Drivers see (and may echo) the percent-decoded password.
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if len(secret) >= 2}


def redact_secrets(text: str, url: str | None) -> str:
    """Mask every URL in ``text`` by its structure, then the known URL's secrets as words.

    A secret is masked in free text only as a whole token (not inside a longer word), and
    not at all when it also spells a visible part of the URL (a password equal to the user
    name, the host or the scheme): masking it there would hide what is not secret, and
    drivers name the user in their messages, never the password.
    """
    text = _URL_IN_TEXT.sub(lambda m: display_url(m.group(0)), text)
    if not url:
        return text
    visible = display_url(url)
    for secret in sorted(_secrets_of(url), key=len, reverse=True):
        if secret in visible:
            continue
        text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", _MASK, text)
    return text


def backend_of(url: str) -> str:
    """The database of a URL without its driver: ``postgresql+asyncpg://…`` -> ``postgresql``."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def is_sqlite_url(url: str) -> bool:
    return backend_of(url) == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The database file a SQLite URL names, or ``None`` for an in-memory database."""
    if not is_sqlite_url(url):
        return None
    path = url.split("://", 1)[1][1:] if "://" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    if path.startswith("file:"):
        path = path[len("file:") :]
    return Path(path)


def async_driver_url(url: str) -> tuple[str, str | None]:
    """``postgres://`` / ``postgresql://`` / ``sqlite://`` with qxdb's async driver.

    Returns the URL to use and, when it was changed, a one-line note saying so (the
    libpq spelling ``postgres://`` is what most hosting providers hand out).
    """
    scheme, sep, rest = url.partition("://")
    driver = _ASYNC_DRIVERS.get(scheme.strip().lower()) if sep else None
    if driver is None:
        return url, None
    return f"{driver}://{rest}", f"{scheme}:// read as {driver}:// (qxdb's async driver)"
