"""``py``, ``sleep``, ``help``, ``quit``: Python in the session, and the session itself."""

from __future__ import annotations

import code
import contextlib
import time
import traceback
from collections.abc import Sequence

import sagactor

from ...actors.faults import Fault
from ...crashpoints import CrashPoint
from ..render import table
from ..session import CommandError, Quit, Session, suggest
from .args import number
from .registry import COMMANDS, UsageError, command, command_names, lookup

__all__ = ["cmd_help", "cmd_py", "cmd_quit", "cmd_sleep"]


class _LeaveConsole:
    """``exit()`` for the console: the builtin one closes stdin, which the REPL still needs."""

    def __repr__(self) -> str:
        return "Use exit() or Ctrl-D to return to the playground"

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)


@command(
    "py",
    usage="py [CODE]",
    summary="Python with the runtime in scope (rt, shell, sagactor, Fault, sagas)",
    details="""
Without CODE (interactive only), opens a Python console; Ctrl-D comes back. With CODE, runs
that one line and prints an expression's value, e.g.  py rt.state("payment").balances
""",
    raw=True,
)
def cmd_py(shell: Session, args: list[str]) -> None:
    namespace = shell.py_namespace
    namespace.update(
        exit=_LeaveConsole(),
        quit=_LeaveConsole(),
        rt=shell.rt,
        shell=shell,
        sagactor=sagactor,
        Fault=Fault,
        CrashPoint=CrashPoint,
        sagas={s.name: s for s in shell.domain.sagas},
    )
    for saga in shell.domain.sagas:
        if saga.name.isidentifier():
            namespace.setdefault(saga.name, saga)
    if not args:
        if not shell.interactive:
            raise UsageError("py", "in a script, give the Python to run on the same line")
        # exit() in the console leaves the console, not the playground.
        with contextlib.suppress(SystemExit):
            code.interact(
                banner="Python with the playground in scope: rt (the runtime), shell, sagactor, "
                "Fault, CrashPoint, sagas. Ctrl-D (or exit()) returns to the playground.",
                local=namespace,
                exitmsg="",
            )
        shell.emit("back in the playground")
        return
    source = args[0]
    try:
        try:
            compiled = compile(source, "<py>", "eval")
        except SyntaxError:
            exec(compile(source, "<py>", "exec"), namespace)
        else:
            value = eval(compiled, namespace)
            if value is not None:
                shell.emit(repr(value))
    except SystemExit:
        raise CommandError("py: exit() does not leave the playground; `quit` does") from None
    except Exception as error:  # noqa: BLE001 - user code
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        raise CommandError(f"py: {last}") from None


@command("sleep", usage="sleep SECONDS", summary="pause (in scripts)")
def cmd_sleep(shell: Session, args: list[str]) -> None:
    if len(args) != 1:
        raise UsageError("sleep", "give a number of seconds")
    time.sleep(number("sleep", args[0], "SECONDS"))


def _complete_help(shell: Session, before: Sequence[str]) -> list[str]:
    return command_names() if not before else []


@command(
    "help",
    usage="help [COMMAND]",
    summary="this list, or one command's details",
    complete=_complete_help,
)
def cmd_help(shell: Session, args: list[str]) -> None:
    if not args:
        rows = [[c.name, c.summary] for c in COMMANDS.values()]
        shell.emit("commands (`help COMMAND` for its usage, details and examples):")
        shell.emit(table(["command", "what it does"], rows))
        return
    found = lookup(args[0])
    if found is None:
        raise UsageError("help", f"no command {args[0]!r}{suggest(args[0], command_names())}")
    shell.emit(f"usage: {found.usage}")
    shell.emit(f"  {found.summary}")
    if found.aliases:
        shell.emit(f"  also: {', '.join(found.aliases)}")
    for line in found.details.strip("\n").splitlines():
        shell.emit(f"  {line}" if line else "")


@command("quit", usage="quit", summary="leave (Ctrl-D works too)", aliases=("exit", "q"))
def cmd_quit(shell: Session, args: list[str]) -> None:
    raise Quit
