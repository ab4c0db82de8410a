"""The playground's engine: a session that runs command lines.

A :class:`Shell` is a :class:`~sagactor.playground.session.Session` (one runtime over one
journal) that parses a line, finds its command in :mod:`.commands`, runs it, prints what went
wrong and counts the failed ones. The REPL and the script runner (:mod:`.repl`) only feed it
lines.
"""

from __future__ import annotations

import shlex

from ..errors import RuntimeClosed, RuntimeCrashed, SagactorError
from .commands import command_names, lookup
from .session import CommandError, Quit, Session, suggest

__all__ = ["CommandError", "Quit", "Shell", "suggest"]


class Shell(Session):
    """A playground session over one journal that runs command lines."""

    def execute(self, line: str) -> bool:
        """Run one command line; False if it failed (the message is printed). Raises Quit."""
        head, _, rest = line.strip().partition(" ")
        if not head or head.startswith("#"):
            return True
        command = lookup(head)
        if command is not None and command.raw:
            name, args = head, [rest.strip()] if rest.strip() else []
        else:
            try:
                words = shlex.split(line, comments=True)
            except ValueError as error:
                self.fail(f"cannot read that line: {error}")
                return False
            if not words:
                return True
            name, args = words[0], words[1:]
            command = lookup(name)
        if command is None:
            self.fail(
                f"unknown command {name!r}{suggest(name, command_names())}; "
                "`help` lists the commands"
            )
            return False
        try:
            command.run(self, args)
        except Quit:
            raise
        except CommandError as error:
            self.fail(str(error))
            return False
        except (RuntimeCrashed, RuntimeClosed) as error:
            if self.rt is not None and self.rt.crashed:
                self.crash_noticed = True
                self.fail(f"{self.crash_message()}; type `recover` to reopen the journal")
            else:
                self.fail(f"{error}; type `recover` to reopen the journal")
            return False
        except SagactorError as error:
            self.fail(str(error))
            return False
        except KeyboardInterrupt:
            self.fail("interrupted (sagas keep running in the background)")
            return False
        except Exception as error:  # noqa: BLE001 - the session must survive any bad input
            self.fail(f"{name}: unexpected {type(error).__name__}: {error}")
            return False
        return True
