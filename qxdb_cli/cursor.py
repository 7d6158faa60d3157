"""``qxdb cursor``: look inside a cursor token, or build one. No database, no SQLAlchemy.

Only the standard-library codec (:mod:`qxdb.cursor`) is imported, inside the commands, so
these start as fast as ``qxdb --help``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from qxdb_cli.common import JsonOption

if TYPE_CHECKING:
    from qxdb.cursor import CursorCodec, DecodedCursor

app = typer.Typer(
    help="Decode and encode opaque pagination cursors (no database needed).",
    no_args_is_help=True,
)

_SECRET_HELP = (
    "HMAC key to sign with / verify against. Default: QX_DB__CURSOR_SECRET "
    "(QX_DB__CURSOR_PREVIOUS_SECRETS still verify). Prefer the environment: "
    "a command line is visible to other users."
)


def _read_argument(value: str, what: str) -> str:
    if value != "-":
        return value
    from qxdb.cursor import MAX_TOKEN_LENGTH
    from qxdb.errors import ValidationError

    # Bounded read: an endless stdin must not exhaust memory before the size check. Bytes,
    # decoded here, so bytes that are not UTF-8 are bad input rather than a crash.
    raw = sys.stdin.buffer.read(max(MAX_TOKEN_LENGTH, 1 << 20) + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"the {what} on stdin is not UTF-8 text") from None
    if not text.strip():
        raise typer.BadParameter(f"no {what} on stdin", param_hint="'-'")
    return text.strip()


def _codec(secret: str | None, *, allow_unsigned: bool = False) -> CursorCodec:
    from dataclasses import replace

    from qxdb.cursor import CursorCodec

    codec = CursorCodec.from_env()
    if secret is not None:
        codec = replace(codec, secret=secret)
    if allow_unsigned and codec.secret is not None:
        codec = replace(codec, require_signature=False)
    return codec


def decode(
    token: Annotated[str, typer.Argument(help="The cursor token, or - to read it from stdin.")],
    secret: Annotated[
        str | None, typer.Option("--secret", help=_SECRET_HELP, show_default=False)
    ] = None,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned", help="Show an unsigned token even though a secret is configured."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the values in a cursor, with their types, and whether its signature verified.

    A token the service would refuse (malformed, tampered, expired, unsigned while a secret
    is configured, too large, of an unknown version) exits 2 with one line naming the reason.
    Reads QX_DB__CURSOR_SECRET, QX_DB__CURSOR_PREVIOUS_SECRETS, QX_DB__CURSOR_MAX_AGE_SECONDS.

    Example: qxdb cursor decode v1.eyJrIjp7ImlkIjoxfSwiZCI6Im4iLCJ0IjoxNzAwMDAwMDAwfQ --json
    """
    from qxdb.errors import CursorError

    codec = _codec(secret, allow_unsigned=allow_unsigned)
    try:
        decoded = codec.decode(_read_argument(token, "cursor"))
    except CursorError as exc:
        hint = " (--allow-unsigned shows it anyway)" if exc.reason == "unsigned" else ""
        raise CursorError(exc.reason, f"bad cursor ({exc.reason}): {exc.message}{hint}") from None
    if as_json:
        from qxdb_cli import render

        render.print_json(decoded.to_dict())
        return
    _print_human(decoded, has_secret=codec.secret is not None)


def _print_human(decoded: DecodedCursor, *, has_secret: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    def plain(value: str) -> Text:
        # Token text is the sender's: "[/]" or "[bold]" must print as written, not as markup.
        return Text(value)

    from qxdb_cli import render

    document = decoded.to_dict()
    if not decoded.signed:
        signature = "no"
    elif decoded.verified:
        signature = f"yes, verified with the {document['key']} key"
    else:
        signature = "yes, NOT verified" + ("" if has_secret else " (no secret given)")
    about = Table(show_header=False, box=None, pad_edge=False)
    about.add_row(
        "format", f"v{decoded.version}" + ("  (reference, untyped)" if not decoded.version else "")
    )
    about.add_row("signed", signature)
    if decoded.version:
        about.add_row("direction", decoded.direction)
        about.add_row("fingerprint", plain(decoded.fingerprint or "-"))
        about.add_row("issued at", document["issued_at"] or "-")
    render.out().print(about)
    values = Table(box=None, pad_edge=False)
    for column in ("field", "type", "value"):
        values.add_column(column)
    for item in document["values"]:
        shown = "null" if item["value"] is None else str(item["value"])
        values.add_row(plain(item["field"]), item["type"], plain(shown))
    render.out().print(values)


def encode(
    document: Annotated[
        str,
        typer.Argument(
            help='JSON: {"field": value | {"type": "...", "value": "..."}} or what '
            "`decode --json` prints; - reads stdin.",
        ),
    ],
    secret: Annotated[
        str | None, typer.Option("--secret", help=_SECRET_HELP, show_default=False)
    ] = None,
    fingerprint: Annotated[
        str | None,
        typer.Option("--fingerprint", help="Fingerprint to carry (default: the document's)."),
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option("--direction", help="next or previous (default: the document's, else next)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Build a cursor token from JSON values; signed when a secret is given or configured.

    Value types: str, int, bool, null as plain JSON; datetime, date, uuid, decimal, float as
    {"type": ..., "value": "..."}. `qxdb cursor decode --json T | qxdb cursor encode -`
    rebuilds an equivalent token.

    Example: qxdb cursor encode '{"created_at": {"type": "datetime", "value": "2024-05-01T12:00:00.000001+00:00"}, "id": 42}'
    """
    import json
    from dataclasses import replace

    from qxdb.cursor import cursor_spec_from_json
    from qxdb.errors import ValidationError

    text = _read_argument(document, "JSON")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"not valid JSON: {exc}") from None
    spec = cursor_spec_from_json(data)
    if fingerprint is not None:
        spec = replace(spec, fingerprint=fingerprint)
    if direction is not None:
        if direction not in ("next", "previous"):
            raise typer.BadParameter("use next or previous", param_hint="'--direction'")
        spec = replace(spec, direction="next" if direction == "next" else "previous")
    codec = _codec(secret)
    token = codec.encode(spec.values, fingerprint=spec.fingerprint, direction=spec.direction)
    if as_json:
        from qxdb_cli import render

        render.print_json({"cursor": token, "signed": codec.secret is not None})
        return
    typer.echo(token)


app.command("decode")(decode)
app.command("encode")(encode)
