"""The ``sagactor`` command: ``sagactor play`` (the playground) and ``sagactor inspect``.

``sagactor play [DB] [--module MODULE] [--script FILE]`` opens the REPL over the journal file
DB (a temporary one without DB, so crashes and recoveries still work; ``--memory`` keeps it in
memory). With ``--script FILE`` (``-`` for stdin), or commands piped on stdin, it runs them
without a terminal and exits with 1 if any command failed.

``sagactor inspect DB`` summarises a journal file without starting any participant;
``sagactor inspect DB list|show|resolve|prune`` operate on it (see :mod:`.inspect_ops`).
``sagactor upgrade-check DB --module M`` says which in-flight sagas would not resume under M.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import JournalError, JournalLocked, SagactorError
from ..names import PARTICIPANT_PREFIX, participant_of
from . import upgrade_check
from .domain import DomainError, load_domain
from .inspect_ops import add_actions, run_action
from .journalview import summarize
from .render import inspect_report
from .repl import run_interactive, run_script
from .shell import Shell

__all__ = ["inspect", "main", "play"]

_SUBCOMMANDS = ("play", "inspect", "upgrade-check")

_PLAY_EPILOG = """\
MODULE is a dotted module name or a .py file defining `participants()` (a function returning
fresh Participant objects; a list works too), `sagas` (a list of Saga definitions) and,
optionally, `defaults` ({saga name: {field: value}}) for `start`'s input. Without them, the
module's Participant instances (or no-argument Participant classes) and Saga objects are used.
The default is the example shop (sagactor.examples.shop).

In a script, lines starting with # are printed as they are; a failed command is reported and
the script goes on; the exit status is 1 if any command failed.
History is kept in ~/.sagactor_history ($SAGACTOR_HISTORY overrides; empty keeps none).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagactor", description="Run, break, crash and inspect sagas."
    )
    parser.add_argument("--version", action="version", version=f"sagactor {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    play = sub.add_parser(
        "play",
        help="the interactive playground (a REPL, or a script)",
        description="The playground: start sagas, inject faults, crash, recover, inspect.",
        epilog=_PLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    play.add_argument("db", nargs="?", metavar="DB", help="journal file (default: temporary)")
    play.add_argument("--module", "-m", metavar="MODULE", help="participants and sagas to use")
    play.add_argument("--script", "-s", metavar="FILE", help="run the commands in FILE (- stdin)")
    play.add_argument(
        "--memory", action="store_true", help="keep the journal in memory (no DB file)"
    )
    play.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long start and recover wait for outcomes (default 10)",
    )
    inspect = sub.add_parser(
        "inspect",
        help="summarise a journal file without starting participants",
        description="Sagas by status, participants, and the sagas stuck or in flight (why).",
    )
    inspect.add_argument("db", metavar="DB", help="journal file")
    inspect.add_argument("--all", action="store_true", help="also list every saga")
    add_actions(inspect)
    upgrade_check.add_parser(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """The ``sagactor`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*_SUBCOMMANDS, "-h", "--help", "--version"):
        args = ["play", *args]
    try:
        options = _parser().parse_args(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if options.command == "upgrade-check":
        return int(options.run(options))
    if options.command == "inspect":
        return inspect(options.db, list_all=options.all, options=options)
    return play(options)


def _error(message: str) -> int:
    print(f"sagactor: {message}", file=sys.stderr)
    return 1


def play(options: argparse.Namespace) -> int:
    if options.db is not None and options.memory:
        return _error("give a DB file or --memory, not both")
    try:
        domain = load_domain(options.module)
    except DomainError as error:
        return _error(str(error))
    script_lines: list[str] | None = None
    source = "script"
    stdin = sys.stdin
    if options.script is None and stdin is None:
        return _error("no terminal and no input: give --script FILE")
    if options.script == "-" or (options.script is None and not stdin.isatty()):
        script_lines, source = stdin.read().splitlines(), "input"
    elif options.script is not None:
        try:
            with open(options.script, encoding="utf-8") as file:
                script_lines = file.read().splitlines()
        except OSError as error:
            return _error(f"cannot read the script: {error}")
    shell = Shell(
        domain,
        path=options.db,
        memory=options.memory,
        interactive=script_lines is None,
        timeout=options.timeout,
    )
    try:
        try:
            resumed = shell.open()
        except JournalLocked:
            return _error(
                f"the journal {options.db} is open by another running sagactor (it is locked); "
                "stop that one first"
            )
        except SagactorError as error:
            return _error(f"cannot open the journal: {error}")
        shell.emit(shell.banner(resumed))
        if script_lines is None:
            return run_interactive(shell)
        return run_script(shell, script_lines, source=source)
    finally:
        shell.close()


def inspect(path: str, *, list_all: bool = False, options: argparse.Namespace | None = None) -> int:
    """Print a journal file's summary; 1 if it cannot be read."""
    from ..persistence.sqlite import SqliteJournal

    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return _error(f"no journal at {path}")
    try:
        journal = SqliteJournal(path)
    except JournalLocked:
        return _error(
            f"{path} is locked: a running sagactor has it open. Inspect it from that session "
            "(`sagas`, `stats`), or stop it first"
        )
    except (JournalError, ValueError) as error:
        return _error(f"cannot read {path}: {error}")
    if options is not None and options.action is not None:
        try:
            return run_action(journal, options)
        finally:
            journal.close()
    try:
        summaries = summarize(journal)
        participants = {
            participant_of(stream) or stream: journal.last_seq(stream)
            for stream in journal.streams(PARTICIPANT_PREFIX)
        }
    except SagactorError as error:
        return _error(f"cannot read {path}: {error}")
    finally:
        journal.close()
    print(inspect_report(path, summaries, participants, list_all=list_all))
    return 0
