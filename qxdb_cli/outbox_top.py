"""``qxdb outbox top``: a live view of the outbox, refreshed every second."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from qxdb.core import defaults
from qxdb_cli import common, render
from qxdb_cli.common import JsonOption

if TYPE_CHECKING:
    from rich.console import RenderableType

    from qxdb.outbox.top import TopSnapshot

_SPARKS = "▁▂▃▄▅▆▇█"


def top(
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=defaults.TOP_INTERVAL_MIN_SECONDS,
            max=defaults.TOP_INTERVAL_MAX_SECONDS,
            help="Seconds between refreshes.",
        ),
    ] = defaults.TOP_INTERVAL_SECONDS,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """A live view of the outbox: pending / failed / dead by event, lag, publish rate with a
    sparkline, and the relays holding leases. q or Ctrl-C quits.

    Read-only, and cheap on a large table: each refresh reads the pending rows through
    the partial index (as stats does) and only the rows recorded since the last one.
    Without a terminal a frame is printed every interval. --once prints one frame,
    --json one snapshot: both sample twice, one --interval apart, so they carry the
    publish rate over that interval.

    Example: qxdb outbox top
    """
    import asyncio

    from qxdb.outbox.store import open_outbox_store
    from qxdb.outbox.top import OutboxTop
    from qxdb_cli.state import load_settings

    settings = load_settings()
    render.announce_database(settings)

    async def work() -> None:
        async with open_outbox_store(settings) as store:
            sampler = OutboxTop(store)
            if as_json or once:
                # A rate needs two samples: the first notes where the table ends.
                await sampler.sample()
                await asyncio.sleep(interval)
                snapshot = await sampler.sample()
                if as_json:
                    render.print_json(snapshot.to_dict())
                else:
                    render.out().print(_frame(snapshot, live=False))
                return
            await _live(sampler, interval)

    common.run(work(), interrupted="stopped")


async def _live(sampler: Any, interval: float) -> None:
    """Refresh until q, Ctrl-C or SIGTERM; the terminal is put back as it was."""
    import asyncio
    import contextlib
    import signal
    import sys

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    restore = _keys(loop, stop) if sys.stdin.isatty() else None
    console = render.out()
    try:
        if console.is_terminal:
            from rich.live import Live

            with Live(console=console, auto_refresh=False, screen=False) as live:
                while not stop.is_set():
                    live.update(_frame(await sampler.sample()), refresh=True)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), interval)
        else:
            while not stop.is_set():
                console.print(_frame(await sampler.sample()))
                console.print()
                sys.stdout.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if restore is not None:
            restore()


def _keys(loop: Any, stop: Any) -> Any:
    """Read single keys from the terminal (q quits); returns what puts it back."""
    import os
    import sys
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def on_key() -> None:
        data = os.read(fd, 32)
        # Ctrl-C arrives as a byte when the terminal is not our controlling one.
        if not data or b"q" in data.lower() or b"\x03" in data:
            stop.set()

    loop.add_reader(fd, on_key)

    def restore() -> None:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore


def sparkline(values: list[float], width: int = 60) -> str:
    """The last ``width`` values as block characters, scaled to their maximum."""
    shown = values[-width:]
    top = max(shown, default=0.0)
    if top <= 0:
        return _SPARKS[0] * len(shown)
    return "".join(_SPARKS[min(7, int(v / top * 7.999))] for v in shown)


def _frame(snap: TopSnapshot, *, live: bool = True) -> RenderableType:
    from rich.console import Group
    from rich.table import Table

    s = snap.stats
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(no_wrap=True)
    head.add_column(no_wrap=True, overflow="ellipsis")
    head.add_row("table", s.table)
    head.add_row(
        "pending",
        f"{render.number(s.pending)} (failed {render.number(s.failed)})   "
        f"dead {render.number(s.dead)}",
    )
    head.add_row("lag", render.age(s.lag_seconds) if s.pending else "none")
    rate = snap.published_per_second
    head.add_row(
        "published",
        (
            f"{render.number(round(rate))}/s"
            if rate is not None
            else "measuring…"
            if live
            else "- (one sample has no rate)"
        ),
    )
    if snap.rate_history:
        head.add_row("", sparkline(snap.rate_history))
    parts: list[RenderableType] = [head]
    if s.by_event:
        events = Table(box=None, pad_edge=False, header_style="bold")
        events.add_column("event", no_wrap=True, overflow="ellipsis")
        for name in ("pending", "failed", "dead"):
            events.add_column(name, justify="right", no_wrap=True)
        for c in s.by_event:
            events.add_row(
                c.event_name,
                render.number(c.pending),
                render.number(c.failed),
                render.number(c.dead),
            )
        parts += ["", events]
    leases = Table(box=None, pad_edge=False, header_style="bold")
    leases.add_column("relay (locked_by)", no_wrap=True, overflow="ellipsis")
    leases.add_column("leased rows", justify="right", no_wrap=True)
    for holder in snap.leases:
        leases.add_row(holder.worker_id, render.number(holder.rows))
    if not snap.leases:
        leases.add_row("none", "0")
    footer = f"refresh {snap.sample_seconds * 1000:.0f} ms" + (" · q quits" if live else "")
    parts += ["", leases, "", footer]
    return Group(*parts)
