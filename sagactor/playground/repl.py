"""The two ways to feed the shell: an interactive prompt_toolkit REPL, and a script.

Script mode echoes each command after the prompt, runs it, and carries on after a failed
command (every failure is reported, and counted for the exit status: 1 if any failed).
Comment lines (``# ...``) are printed as they are, so a script can narrate itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from .commands import COMMANDS, complete, lookup
from .shell import Quit, Shell

__all__ = ["PlaygroundCompleter", "default_history", "run_interactive", "run_script"]


class PlaygroundCompleter(Completer):
    """Completes command names, then each command's arguments: saga ids and definitions,
    participants and their actions, fault kinds, crash points, statuses, input fields."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor.lstrip()
        words = text.split()
        fresh_word = not text or text[-1].isspace()
        if len(words) == 0 or (len(words) == 1 and not fresh_word):
            typed = words[0] if words else ""
            for name, spec in COMMANDS.items():
                if name.startswith(typed):
                    yield Completion(name, -len(typed), display_meta=spec.summary)
            return
        command = lookup(words[0])
        if command is None:
            return
        current = "" if fresh_word else words[-1]
        before = words[1:] if fresh_word else words[1:-1]
        try:
            candidates = complete(self.shell, command.name, before, current)
        except Exception:  # noqa: BLE001 - completion must never break the prompt
            return
        for candidate in dict.fromkeys(candidates):
            if candidate.startswith(current):
                yield Completion(candidate, -len(current))


def default_history() -> History:
    """``$SAGACTOR_HISTORY`` (empty: none kept), else ``~/.sagactor_history``."""
    where = os.environ.get("SAGACTOR_HISTORY")
    if where == "":
        return InMemoryHistory()
    path = Path(where) if where else Path.home() / ".sagactor_history"
    try:
        path.touch(exist_ok=True)
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


def run_interactive(shell: Shell, history: History | None = None) -> int:
    """Prompt, run, repeat, until ``quit`` or Ctrl-D. Never dies on bad input."""
    session: PromptSession[str] = PromptSession(
        history=history if history is not None else default_history(),
        completer=PlaygroundCompleter(shell),
        complete_while_typing=True,
        auto_suggest=AutoSuggestFromHistory(),
    )
    while True:
        shell.notice_crash()
        try:
            with patch_stdout(raw=True):
                line = session.prompt(shell.prompt_text())
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            shell.execute(line)
        except Quit:
            break
    return 0


def run_script(shell: Shell, lines: Iterable[str], *, source: str = "script") -> int:
    """Run each line as a command, echoed after the prompt; 1 if any command failed."""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            shell.emit(line)
            continue
        shell.notice_crash()
        shell.emit(shell.prompt_text() + line)
        try:
            shell.execute(line)
        except Quit:
            break
    shell.notice_crash()
    if shell.failures:
        print(f"sagactor: {shell.failures} command(s) of the {source} failed", file=sys.stderr)
        return 1
    return 0
