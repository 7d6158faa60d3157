"""The shared CLI helpers that need no subprocess: where global options go, how counts read."""

from __future__ import annotations

import pytest

from qxdb_cli.common import hoist_global_options
from qxdb_cli.render import plural, short_id


@pytest.mark.parametrize(
    ("argv", "hoisted"),
    [
        (["doctor", "--database-url", "X", "--json"], ["--database-url", "X", "doctor", "--json"]),
        (["doctor", "--database-url=X"], ["--database-url=X", "doctor"]),
        (["outbox", "stats", "--debug"], ["--debug", "outbox", "stats"]),
        # Before the command: untouched, and its value is not taken for the command.
        (["--database-url", "doctor", "doctor"], ["--database-url", "doctor", "doctor"]),
        (["migrate", "down", "-1", "--yes"], ["migrate", "down", "-1", "--yes"]),
        # After "--" nothing moves.
        (["cursor", "decode", "--", "--debug"], ["cursor", "decode", "--", "--debug"]),
        (["--version"], ["--version"]),
        ([], []),
    ],
)
def test_global_options_after_the_command_move_in_front(
    argv: list[str], hoisted: list[str]
) -> None:
    assert hoist_global_options(argv) == hoisted


def test_counts_read_as_numbers_and_words() -> None:
    assert plural(1, "row") == "1 row"
    assert plural(200_000, "row") == "200,000 rows"
    assert plural(2, "committed batch", "committed batches") == "2 committed batches"
    assert plural(0, "revision") == "0 revisions"
    assert short_id("0193a1b2-7c4d-7e5f-8a9b-0c1d2e3f4a5b") == "…2e3f4a5b"
    assert short_id(None) == ""
