"""The command table: each command registers itself, with its help, beside its function.

``@command("start", usage=..., summary=..., details=...)`` adds a :class:`Command` to
:data:`COMMANDS`; ``help``, completion and the shell read that table. Registration order is
the order ``help`` lists the commands (see :mod:`sagactor.playground.commands`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..session import CommandError, Session

__all__ = [
    "COMMANDS",
    "Command",
    "Completer",
    "Run",
    "UsageError",
    "command",
    "command_names",
    "complete",
    "lookup",
]

Run = Callable[[Session, list[str]], None]
"""A command: ``(session, args)``; prints through the session, raises CommandError."""

Completer = Callable[[Session, Sequence[str]], list[str]]
"""Candidates for the next argument, given the words typed before it."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    summary: str
    details: str
    run: Run
    aliases: tuple[str, ...] = ()
    raw: bool = False
    """The rest of the line is one argument, as typed (no quoting rules, no comments)."""
    complete: Completer | None = None


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    *,
    usage: str,
    summary: str,
    details: str = "",
    aliases: tuple[str, ...] = (),
    raw: bool = False,
    complete: Completer | None = None,
) -> Callable[[Run], Run]:
    """Register the decorated function as the command ``name``, with its help."""

    def register(run: Run) -> Run:
        if name in COMMANDS:
            raise ValueError(f"the playground command {name!r} is registered twice")
        COMMANDS[name] = Command(name, usage, summary, details, run, aliases, raw, complete)
        return run

    return register


class UsageError(CommandError):
    def __init__(self, command: str, problem: str) -> None:
        super().__init__(f"{command}: {problem} (usage: {COMMANDS[command].usage})")


def command_names() -> list[str]:
    return list(COMMANDS)


def lookup(name: str) -> Command | None:
    found = COMMANDS.get(name)
    if found is not None:
        return found
    return next((c for c in COMMANDS.values() if name in c.aliases), None)


def complete(shell: Session, command: str, before: Sequence[str], current: str) -> list[str]:
    """Candidates for the word being typed after ``command`` and the words ``before`` it."""
    found = lookup(command)
    if found is None or found.complete is None:
        return []
    return found.complete(shell, before)
