"""Parsing of settings text that more than one reader needs (one parser each).

``QX_DB__CURSOR_PREVIOUS_SECRETS`` is read by :class:`qxdb.settings.DatabaseSettings` (so
also from ``.env``) and by :meth:`qxdb.cursor.CursorCodec.from_env` (the command's light
path): both call :func:`parse_secret_list`, so both accept the same two documented forms.
"""

from __future__ import annotations

import json

__all__ = ["ENV_PREVIOUS_SECRETS", "parse_secret_list"]

ENV_PREVIOUS_SECRETS = "QX_DB__CURSOR_PREVIOUS_SECRETS"


def parse_secret_list(text: str, *, what: str = ENV_PREVIOUS_SECRETS) -> tuple[str, ...]:
    """``old1,old2`` or ``["old1", "old2"]`` -> ``("old1", "old2")``; blank -> ``()``.

    Empty entries are dropped (an empty key would verify nothing). Raises ``ValueError``
    naming ``what`` for a JSON text that is not a list of strings.
    """
    text = text.strip()
    if not text:
        return ()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise ValueError(f"{what} is not a valid JSON list") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"{what} must be a JSON list of strings")
        return tuple(i for i in items if i)
    return tuple(part.strip() for part in text.split(",") if part.strip())
