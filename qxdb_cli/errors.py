"""The one place where errors become exit codes and a single line on stderr.

0 success; 1 the check ran and found problems (or the database refused a statement);
2 bad usage or bad input; 3 the database or broker could not be reached or refused us;
70 an internal error (an exception no rule expects: a bug in qxdb or in the code it
imported), as sysexits' EX_SOFTWARE, with a hint to re-run with ``--debug``.
"""

from __future__ import annotations

import sys
import traceback

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 70

_DEBUG_HINT = "this is a bug; re-run with --debug for the traceback and report it"


def exit_code_for(exc: BaseException) -> int:
    from qxdb.core.failures import is_unavailable
    from qxdb.errors import (
        BrokerUnavailableError,
        ConfigurationError,
        DatabaseUnavailableError,
        Error,
        ValidationError,
    )

    if isinstance(exc, DatabaseUnavailableError | BrokerUnavailableError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, ValidationError | ConfigurationError):
        return EXIT_USAGE
    if isinstance(exc, Error):
        return EXIT_FINDINGS
    if _is_path_error(exc):
        # A path we cannot read or write (read-only folder, missing parent): bad input.
        return EXIT_USAGE
    if is_unavailable(exc):
        return EXIT_UNAVAILABLE
    if _is_statement_failure(exc):
        # The database refused a statement (a timeout, a permission, a constraint): the
        # operation failed, as a check that found problems; not a bug in qxdb.
        return EXIT_FINDINGS
    return EXIT_INTERNAL


def _is_statement_failure(exc: BaseException) -> bool:
    # Only consult SQLAlchemy if a command already imported it: light commands stay light.
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.DBAPIError)


def _is_path_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.filename is not None


def message_for(exc: BaseException) -> str:
    from qxdb.errors import Error
    from qxdb.urls import redact_secrets
    from qxdb_cli.state import state

    if isinstance(exc, Error):
        text = exc.message
    else:
        sa_exc = sys.modules.get("sqlalchemy.exc")
        if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
            text = f"{type(exc.orig).__name__}: {exc.orig}"
        elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            text = f"cannot use {exc.filename}: {exc.strerror}"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.strip().split("\n")[0].split()) or type(exc).__name__
    # The URL's password as free text too (a driver may echo it), from wherever it came.
    import os

    return redact_secrets(text, state.database_url or os.environ.get("QX_DB__URL"))


def report(exc: BaseException, *, debug: bool) -> int:
    code = exit_code_for(exc)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    message = message_for(exc)
    if code == EXIT_INTERNAL:
        message = f"internal error: {message}" + ("" if debug else f" ({_DEBUG_HINT})")
    sys.stderr.write(f"qxdb: error: {message}\n")
    return code
