"""Startup: build only the part of the command tree a run needs, and coerce plain strings cheaply.

Two costs made ``qxdb`` start slower than a bare Typer app (issue 15; figures in
docs/benchmarks.md):

* Typer builds the whole Click tree up front: it imports every command module and reads
  every command's signature (``get_type_hints`` on ~30 functions), though a run uses one
  command. :class:`LazyTyperGroup` keeps a placeholder per command and builds the real one
  on first use, through Typer's public ``add_typer`` / ``command`` (so it comes out exactly
  as an eagerly registered one would). Listing the commands in ``--help`` needs only each
  one's summary, which the placeholder carries; ``tests/cli/test_startup_imports.py``
  keeps those summaries equal to the real ones.
* Recent Typers coerce every parameter through a pydantic ``TypeAdapter`` (~100-140 ms of
  imports), even a ``str`` option that was never given and the ``--install-completion``
  flag. :func:`plain_coercion` gives ``str`` and ``bool`` parameters a coercion that passes
  through the values that need no conversion (a ``str``, a ``bool``) and hands anything
  else to Typer's own coercion, so results and error messages are Typer's.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["LazyCommand", "LazyTyperGroup", "plain_coercion"]


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command or command group of the root, built from ``module.attribute`` on first use."""

    name: str
    module: str
    attribute: str
    summary: str  # the first paragraph of its help: all that the root's --help shows of it
    group: bool  # a typer.Typer sub-app (True) or a command function (False)


class _Placeholder(typer.core.TyperCommand):
    """Stands in a group's command table until the real command is built."""

    def __init__(self, entry: LazyCommand) -> None:
        super().__init__(name=entry.name, help=entry.summary)
        self.entry = entry


class LazyTyperGroup(TyperGroup):
    """A Typer group whose :attr:`lazy` commands are imported and built only when used.

    Subclass it with ``lazy`` set and pass it as ``typer.Typer(cls=...)``. Commands
    registered the usual way (``app.command``, ``app.add_typer``) keep working beside them.
    """

    lazy: tuple[LazyCommand, ...] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in self.lazy:
            self.commands.setdefault(entry.name, _Placeholder(entry))
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = self.commands.get(cmd_name)
        if isinstance(found, _Placeholder) and not self._listing:
            found = self._build(found.entry)
            self.commands[cmd_name] = found
        return found

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # The command list shows summaries only: the placeholders have them.
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def _build(self, entry: LazyCommand) -> Any:
        """The command as Typer builds it under this group, with the group's settings."""
        target = getattr(importlib.import_module(entry.module), entry.attribute)
        shadow = typer.Typer(
            rich_markup_mode=self.rich_markup_mode,
            suggest_commands=self.suggest_commands,
            pretty_exceptions_enable=False,
            add_completion=False,
        )
        if entry.group:
            shadow.add_typer(target, name=entry.name)
        else:
            shadow.command(entry.name)(target)
        built = typer.main.get_group(shadow).commands[entry.name]
        plain_coercion(built)
        return built


def plain_coercion(command: Any) -> None:
    """Give the ``str`` and ``bool`` parameters of ``command`` (and of its built
    subcommands) a coercion that needs no pydantic for the values that need no conversion.

    A no-op on Typers without the runtime-coercion layer (they use Click's types).
    """
    factory = _pass_through_class()
    if factory is not None:
        _walk(command, lambda p: _install(p, factory))


@cache
def _pass_through_class() -> Callable[..., Any] | None:
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
    except ImportError:  # pragma: no cover - older Typer: Click's own types, no pydantic
        return None

    class PassThrough(RuntimeParam):
        """A ``str`` value of a ``str`` parameter, a ``bool`` of a flag, comes back as it is.

        Typer's adapter returns exactly these unchanged too (``str(value)``, a bool); any
        other value goes to the adapter Typer would have built, built on first need.
        """

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is self.annotation:
                return value
            typer_own = build_runtime_param(param.type_descriptor)
            param._runtime_param = typer_own
            return typer_own._coerce_value(value, param=param, ctx=ctx)

    return PassThrough


def _install(param: Any, cls: Callable[..., Any]) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", 0) is not None:
        return  # not a Typer parameter, or its coercion is already built
    info = descriptor.parameter_info
    if descriptor.annotation not in (str, bool) or info.parser is not None:
        return
    if descriptor.file_annotation is not None or param.multiple or param.nargs != 1:
        return
    param._runtime_param = cls(parameter_info=info, annotation=descriptor.annotation)


def _walk(command: Any, install: Callable[[Any], None]) -> None:
    for param in command.params:
        install(param)
    # Click makes the --help option per command on first use (its names come from the
    # context): wrap the maker so that option gets the same coercion.
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            install(option)
        return option

    command.get_help_option = get_help_option
    commands: MutableMapping[str, Any] = getattr(command, "commands", {})
    for sub in commands.values():
        if not isinstance(sub, _Placeholder):
            _walk(sub, install)
