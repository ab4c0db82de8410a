"""Reading command arguments: numbers, counts, saga definitions, participants, modes."""

from __future__ import annotations

from collections.abc import Sequence

from ...runtime import Mode
from ..domain import Definition
from ..session import Session, suggest
from .registry import UsageError

__all__ = [
    "MODES",
    "complete_participant",
    "complete_saga_id",
    "count",
    "find_participant",
    "find_saga",
    "handlers",
    "number",
]

MODES: dict[str, Mode] = {
    "orchestration": "orchestration",
    "orch": "orchestration",
    "choreography": "choreography",
    "choreo": "choreography",
}


def number(command: str, word: str, what: str, *, minimum: float = 0) -> float:
    try:
        value = float(word.removesuffix("s"))
    except ValueError:
        raise UsageError(command, f"{what} must be a number, not {word!r}") from None
    if not value >= minimum:
        raise UsageError(command, f"{what} must be at least {minimum:g}, not {word!r}")
    return value


def count(command: str, word: str, what: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise UsageError(command, f"{what} must be a whole number of at least 1, not {word!r}")
    return int(word)


def find_saga(shell: Session, command: str, word: str | None) -> Definition:
    names = [s.name for s in shell.domain.sagas]
    if word is None:
        return shell.domain.sagas[0]
    found = shell.domain.saga(word)
    if found is None:
        raise UsageError(command, f"no saga definition {word!r}{suggest(word, names)}")
    return found


def find_participant(shell: Session, command: str, word: str) -> str:
    names = sorted(shell.participant_objects)
    if word not in shell.participant_objects:
        raise UsageError(command, f"no participant {word!r}{suggest(word, names)}")
    return word


def handlers(shell: Session, name: str, *, undo: bool = False) -> list[str]:
    kind = type(shell.participant_objects[name])
    return sorted(kind._compensations if undo else kind._actions)


def complete_participant(shell: Session, before: Sequence[str]) -> list[str]:
    return sorted(shell.participant_objects) if not before else []


def complete_saga_id(shell: Session, before: Sequence[str]) -> list[str]:
    return shell.recent_ids() if not before else []
