"""The ``qxdb`` command tree as plain data: what the completion and docs generators walk.

Read from the real Typer app (through the Click command Typer builds from it), so the
generated files follow the code and nothing is listed by hand.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# The completion options change shape (flag or shell name) under this test switch; the
# generated files must not depend on who runs the generator.
os.environ.pop("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", None)


@dataclass(frozen=True)
class Param:
    names: tuple[str, ...]  # e.g. ("-h", "--help"); empty for a positional argument
    name: str  # the Python name; the metavar source of an argument
    takes_value: bool
    value_kind: str  # "" (free text), "file", "dir", "path" or "choice"
    choices: tuple[str, ...]
    help: str
    help_record: tuple[str, str] | None  # what --help shows, as (left, right)
    required: bool


@dataclass(frozen=True)
class Node:
    path: tuple[str, ...]  # ("qxdb", "outbox", "relay")
    help: str  # the full help text (docstring), cleaned
    usage: str  # "qxdb outbox relay [OPTIONS]"
    options: tuple[Param, ...]
    arguments: tuple[Param, ...]
    children: tuple[Node, ...]
    is_group: bool

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def summary(self) -> str:
        return summary(self.help)


def load_root() -> Any:
    """The Click command behind ``qxdb`` (Typer builds a fresh one on every call)."""
    import typer

    from qxdb_cli.main import app

    return typer.main.get_command(app)


def summary(text: str) -> str:
    """The first sentence of a help text, on one line."""
    first = " ".join(text.split("\n\n", 1)[0].split())
    sentence = first.split(". ", 1)[0]
    return sentence.rstrip(".")


def clean_help(raw: str | None) -> str:
    # Click hides everything after \f from --help, and \b only guards rewrapping.
    text = inspect.cleandoc(raw or "").split("\f", 1)[0]
    lines = [line for line in text.splitlines() if line.strip() != "\b"]
    return "\n".join(lines).strip()


def _short_first(name: str) -> tuple[bool, str]:
    return name.startswith("--"), name


def _param(param: Any, ctx: Any) -> Param:
    descriptor = getattr(param, "type_descriptor", None)
    choices: tuple[str, ...] = ()
    kind = ""
    if descriptor is not None:
        if descriptor.is_choice and descriptor.choices is not None:
            choices = tuple(str(getattr(c, "value", c)) for c in descriptor.choices)
            kind = "choice"
        elif descriptor.is_file:
            kind = "file"
        elif descriptor.is_path:
            kind = descriptor.path_type  # "file", "dir" or "path"
    is_option = getattr(param, "param_type_name", "") == "option"
    takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
    return Param(
        # Click keeps some option names in a set: sort them (short first) for stable files.
        names=tuple(sorted([*param.opts, *param.secondary_opts], key=_short_first))
        if is_option
        else (),
        name=param.name or "",
        takes_value=takes_value,
        value_kind=kind,
        choices=choices,
        help=clean_help(getattr(param, "help", None)),
        help_record=param.get_help_record(ctx),
        required=bool(param.required),
    )


def _node(command: Any, ctx: Any, path: tuple[str, ...]) -> Node:
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    children: list[Node] = []
    is_group = hasattr(command, "list_commands")
    if is_group:
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = type(ctx)(sub, info_name=name, parent=ctx, **sub.context_settings)
            children.append(_node(sub, sub_ctx, (*path, name)))
    pieces = command.collect_usage_pieces(ctx)
    return Node(
        path=path,
        help=clean_help(command.help),
        usage=" ".join([ctx.command_path, *pieces]),
        options=tuple(_param(p, ctx) for p in params if p.param_type_name == "option"),
        arguments=tuple(_param(p, ctx) for p in params if p.param_type_name == "argument"),
        children=tuple(children),
        is_group=is_group,
    )


def build_tree(root: Any | None = None, prog_name: str = "qxdb") -> Node:
    """The whole tree; pass ``root`` (a Click command) to describe another app in tests."""
    command = load_root() if root is None else root
    from typer._click import Context

    ctx = Context(command, info_name=prog_name, **command.context_settings)
    return _node(command, ctx, (prog_name,))


def walk(node: Node) -> Iterator[Node]:
    """Every group and command, parents before children, in the app's own order."""
    yield node
    for child in node.children:
        yield from walk(child)
