"""Before a deploy: would every in-flight saga of this journal resume under the new code?

:func:`check_upgrade` replays each in-flight saga of a journal against the definitions and
participants about to be deployed, exactly as recovery would load it (the name and version it
started under, its input and events decoded, its steps known), and checks that what it will
send next has somewhere to go (the participant, the action, the compensation) and that the
results it already holds still decode as the new handlers' return types. It starts no actor
and writes nothing. ``sagactor upgrade-check DB --module M`` runs it from the shell.

A saga reported here would be quarantined by the new runtime (never blocking the others); the
usual fix is to keep its old version registered beside the new one until it finishes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..actors.participant import Participant
from ..errors import SagactorError, SagaQuarantined
from ..messages import SagaStarted
from ..persistence.journal import Journal, Record
from ..persistence.recovery import decode_saga_events, load_saga
from ..sagas.definition import Choreography, Saga
from ..sagas.machine import SagaState
from ..sagas.versions import Definitions

__all__ = ["UpgradeReport", "check_upgrade"]


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`check_upgrade` found: the in-flight sagas by ``name@version``, those that
    would resume, and those that would not (each with why)."""

    in_flight: dict[str, int] = field(default_factory=dict)  # "name@version" -> count
    resumable: tuple[str, ...] = ()
    problems: dict[str, str] = field(default_factory=dict)  # saga id -> why it would not

    @property
    def ok(self) -> bool:
        """Every in-flight saga would resume."""
        return not self.problems

    def __str__(self) -> str:
        total = sum(self.in_flight.values())
        lines = [f"{total} saga(s) in flight, {len(self.resumable)} would resume"]
        lines += [f"  {key}: {n} in flight" for key, n in sorted(self.in_flight.items())]
        if self.problems:
            lines.append(f"{len(self.problems)} would NOT resume (they would be quarantined):")
            lines += [f"  {saga_id}: {why}" for saga_id, why in sorted(self.problems.items())]
        return "\n".join(lines)


def check_upgrade(
    journal: Journal | str | os.PathLike[str],
    participants: Iterable[Participant[Any]],
    sagas: Iterable[Saga | Choreography],
) -> UpgradeReport:
    """Replay every in-flight saga of ``journal`` against the new ``participants`` and
    ``sagas`` (every version you will register) and report which would not resume.

    ``journal`` is a :class:`~sagactor.persistence.journal.Journal` or a path (a SQLite file
    or a PostgreSQL URL); a path is opened and closed here, so a SQLite file must not be open
    by a running runtime (check a copy, or check while it is stopped).
    """
    if isinstance(journal, Journal):
        return _check(journal, list(participants), Definitions(sagas))
    from ..persistence.opening import open_journal

    opened = open_journal(journal, synchronous="normal", create=False)
    try:
        return _check(opened, list(participants), Definitions(sagas))
    finally:
        opened.close()


def _check(
    journal: Journal, participants: list[Participant[Any]], definitions: Definitions
) -> UpgradeReport:
    kinds = {p.participant_name: type(p) for p in participants}
    in_flight: dict[str, int] = {}
    resumable: list[str] = []
    problems: dict[str, str] = {}
    for stream, records in journal.read_open("saga/"):
        saga_id = stream.removeprefix("saga/")
        try:
            state = load_saga(journal, saga_id, records, definitions)
        except SagaQuarantined as error:
            key = _started_under(journal, records)
            in_flight[key] = in_flight.get(key, 0) + 1
            problems[saga_id] = str(error.cause)
            continue
        in_flight[state.definition.key] = in_flight.get(state.definition.key, 0) + 1
        problem = _participants_problem(state, kinds) if isinstance(state, SagaState) else ""
        if problem:
            problems[saga_id] = problem
        else:
            resumable.append(saga_id)
    return UpgradeReport(in_flight, tuple(resumable), problems)


def _started_under(journal: Journal, records: list[Record]) -> str:
    """``name@version`` from the saga's first record ("?" if it does not say)."""
    try:
        first = decode_saga_events(journal, records[:1])
    except SagactorError:
        return "?"
    started = first[0] if first else None
    return f"{started.saga}@{started.version}" if isinstance(started, SagaStarted) else "?"


def _participants_problem(state: SagaState, kinds: dict[str, type[Participant[Any]]]) -> str:
    """Why the new participants could not carry a step-list saga on ("" if they can)."""
    for step in state.definition.steps:
        kind = kinds.get(step.participant)
        if kind is None:
            return f"step {step.name!r}: no participant {step.participant!r}"
        if step.action not in kind._actions:
            return f"step {step.name!r}: {step.participant!r} has no action {step.action!r}"
        needs_undo = step.name in state.done and step.compensable and not step.retriable
        if needs_undo and step.action not in kind._compensations:
            return f"step {step.name!r}: {step.participant!r} has no compensation for it"
        raw = state.raws.get(step.name)
        if raw is not None:
            returns = kind._actions[step.action].returns
            try:
                msgspec.msgpack.decode(raw, type=returns)
            except (msgspec.DecodeError, SagactorError) as error:
                return f"step {step.name!r}: its journaled result no longer decodes: {error}"
    return ""
