"""The playground's commands: one module per group, each command's help beside its function.

Each command is a function ``(session, args)`` registered with
:func:`~.registry.command`; it prints through the session and raises
:class:`~sagactor.playground.session.CommandError` (one line, with a suggestion) on bad input.
Importing this package registers every command, in the order ``help`` lists them.
"""

# The import order is the order `help` lists the commands: keep it.
# isort: off
from . import start, faults, crashes, views, operations, console  # noqa: F401
# isort: on

from .registry import COMMANDS, Command, command, command_names, complete, lookup

__all__ = ["COMMANDS", "Command", "command", "command_names", "complete", "lookup"]
