"""One saga's timeline: its correlated history across participants, then its steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...messages import (
    CompensationFailed,
    CompensationStarted,
    EventDispatched,
    Handled,
    RecoveryAttempted,
    SagaAdmitted,
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaDead,
    SagaOverdue,
    SagaQueued,
    SagaResumed,
    SagaRevived,
    SagaStarted,
    SagaStatus,
    SagaStuck,
    SignalReceived,
    SleepStarted,
    StepAbandoned,
    StepCompensated,
    StepResolved,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
    WaitStarted,
)
from ...runtime import HistoryEntry
from ...sagas.definition import Saga
from ...sagas.endings import failure_reason
from ..journalview import SAGA_EVENT_TYPES, Dispatched, summarize_events
from .basics import clock, compact, duration, table
from .children import child_of, handler_of
from .graphs import owner

__all__ = ["DISPATCHER", "choreography_row", "describe", "native_row", "reads", "timeline"]


DISPATCHER = "dispatcher"
"""Who journals a choreography saga's stream: it routes events, it decides nothing."""


def choreography_row(entry: HistoryEntry, definition: Saga | None) -> tuple[str, str, str] | None:
    """(who, what, detail) of a choreography saga event: participants publish their outcomes,
    the dispatcher delivers them to the subscribers. None for other entries."""
    event = entry.event
    if isinstance(event, StepStarted):
        who, action = owner(event.step, definition)
        return DISPATCHER, "deliver", f"to {who}: {action} ({event.step}, attempt {event.attempt})"
    if isinstance(event, CompensationStarted):
        who, action = owner(event.step, definition)
        detail = f"to {who}: undo {action} ({event.step}, attempt {event.attempt})"
        return DISPATCHER, "deliver", detail
    published: tuple[str, str] | None = None
    if isinstance(event, StepSucceeded):
        published = ("step ok", f"{event.step} => {compact(event.result, 60)}")
    elif isinstance(event, StepAbandoned):
        published = ("step FAILED", f"{event.step}: {event.reason}")
    elif isinstance(event, StepCompensated):
        published = ("compensated", event.step)
    elif isinstance(event, CompensationFailed):
        published = ("undo FAILED", f"{event.step} attempt {event.attempt}: {event.error}")
    if published is not None:
        step = getattr(event, "step", "")
        who = owner(step, definition)[0] if definition is not None else "?"
        return who, f"publish {published[0]}", published[1]
    if isinstance(event, SAGA_EVENT_TYPES):
        what, detail = describe(entry, definition)
        return DISPATCHER, what, detail
    return None


def native_row(entry: HistoryEntry) -> tuple[str, str, str] | None:
    """(who, what, detail) of a native choreography entry: published events, reactions."""
    event = entry.event
    if isinstance(event, Dispatched):
        who = DISPATCHER if entry.source == "start" else entry.source
        what = "start event" if entry.source == "start" else "publish"
        return who, what, f"{entry.type} {compact(event.event, 60)}"
    if isinstance(event, EventDispatched):  # an event type this runtime cannot decode
        return event.source, "publish", f"{event.event_type} {compact(event.data, 60)}"
    if isinstance(event, Handled) and event.kind == "on":
        reason = f": {event.reason}" if event.reason else ""
        return entry.source, f"reacted to {event.step}", f"{event.outcome.value}{reason}"
    if isinstance(event, SAGA_EVENT_TYPES):
        return DISPATCHER, *describe(entry)
    return None


def _native_events(entries: Sequence[HistoryEntry]) -> str:
    rows: list[list[Any]] = []
    handlers: dict[str, list[str]] = {}
    for entry in entries:
        if isinstance(entry.event, Handled) and entry.event.kind == "on":
            handlers.setdefault(entry.event.step, []).append(entry.source)
    for entry in entries:
        if isinstance(entry.event, Dispatched):
            by = "(start)" if entry.source == "start" else entry.source
            handled = handlers.pop(entry.type, [])
            rows.append([len(rows) + 1, entry.type, by, ", ".join(handled) or "-"])
    return table(["#", "event", "published by", "handled by"], rows)


def describe(entry: HistoryEntry, definition: Saga | None = None) -> tuple[str, str]:
    """(what, detail) for one history entry."""
    event = entry.event
    if isinstance(event, SagaStarted):
        mode = "native choreography" if event.mode == "native" else event.mode
        return "saga started", f"{event.saga} v{event.version}, {mode}"
    if isinstance(event, StepStarted):
        who, action = owner(event.step, definition)
        detail = f"{event.step} -> {who}.{action} (attempt {event.attempt})"
        return "run step", detail + _group_note(event.step, definition)
    if isinstance(event, StepSucceeded):
        return "step ok", f"{event.step} => {compact(event.result, 60)}"
    if isinstance(event, StepAbandoned):
        why = "business failure" if event.business else f"gave up after attempt {event.attempt}"
        return "step FAILED", f"{event.step}: {event.reason} ({why})"
    if isinstance(event, StepRetrying):
        wait = max(0.0, event.due - entry.ts)
        return "step error", (
            f"{event.step} attempt {event.attempt}: {event.error}; retry in {duration(wait)}"
        )
    if isinstance(event, StepTimedOut):
        return "step TIMED OUT", f"{event.step} attempt {event.attempt} (in doubt: undone too)"
    if isinstance(event, CompensationStarted):
        who, action = owner(event.step, definition)
        return "compensate", f"{event.step} -> {who}.undo {action} (attempt {event.attempt})"
    if isinstance(event, CompensationFailed):
        then = f"retry in {duration(max(0.0, event.due - entry.ts))}" if event.due else "giving up"
        return "undo error", f"{event.step} attempt {event.attempt}: {event.error}; {then}"
    if isinstance(event, StepCompensated):
        return "compensated", event.step
    if isinstance(event, SagaCompleted):
        return "saga COMPLETED", ""
    if isinstance(event, SagaCompensated):
        return "saga COMPENSATED", event.reason
    if isinstance(event, SagaStuck):
        return "saga STUCK", event.reason
    if isinstance(event, SagaCancelled):
        return "saga cancelled", event.reason
    if isinstance(event, SagaOverdue):
        return "saga OVERDUE", failure_reason(event)
    if isinstance(event, SagaResumed):
        return "saga resumed", f"by {event.by}"
    if isinstance(event, Handled):
        reason = f": {event.reason}" if event.reason else ""
        return f"handled {event.kind}", f"{event.step} {event.outcome.value}{reason}"
    return _waits_and_operations(entry) or (f"  {entry.type}", compact(event, 60))


def _waits_and_operations(entry: HistoryEntry) -> tuple[str, str] | None:
    """(what, detail) of a sleep, a wait, a signal, the queue, and what operators and
    recovery journal; None for any other entry."""
    event, ts = entry.event, entry.ts
    if isinstance(event, SleepStarted):
        return "sleep", f"{event.step} until {clock(event.due)} (for {duration(event.due - ts)})"
    if isinstance(event, WaitStarted):
        until = f"until {clock(event.due)}" if event.due else "no time limit"
        return "wait", f"{event.step} for signal {event.signal!r}, {until}"
    if isinstance(event, SignalReceived):
        detail = f"{event.name!r} (id {event.signal_id}) {compact(event.payload, 50)}"
        return "signal received", detail
    if isinstance(event, SagaQueued):
        return "saga QUEUED", f"waiting for a slot (priority {event.priority}, #{event.ticket})"
    if isinstance(event, SagaAdmitted):
        return "saga admitted", f"got a slot after {duration(event.waited)} queued"
    if isinstance(event, RecoveryAttempted):
        return "recovery", f"resumed it (attempt {event.attempt} in a row without progress)"
    if isinstance(event, SagaDead):
        return "saga DEAD", f"{event.reason} (was {event.was})"
    if isinstance(event, SagaRevived):
        return "saga revived", f"by {event.by}, {event.status} again"
    if isinstance(event, StepResolved):
        note = f": {event.note}" if event.note else ""
        return "resolved by hand", f"{event.step} {event.how} by {event.by}{note}"
    return None


@dataclass(slots=True)
class _StepRow:
    attempts: int = 0
    first: float = 0.0
    last_start: float = 0.0
    outcome: str = "not run"
    took: float | None = None
    undo: str = "-"
    undo_first: float = 0.0
    undo_attempts: int = 0


def _step_rows(entries: Sequence[HistoryEntry], definition: Saga | None) -> dict[str, _StepRow]:
    rows: dict[str, _StepRow] = {}
    if definition is not None:
        for step in definition.steps:
            rows[step.name] = _StepRow(undo="-" if step.compensable else "no undo")
    for entry in entries:
        event, ts = entry.event, entry.ts
        name = getattr(event, "step", None)
        if not isinstance(name, str) or isinstance(event, Handled):
            continue
        row = rows.setdefault(name, _StepRow())
        if isinstance(event, StepStarted):
            row.attempts = max(row.attempts, event.attempt)
            row.first = row.first or ts
            row.last_start = ts
            row.outcome = "running"
        elif isinstance(event, StepSucceeded):
            row.outcome, row.took = "ok", ts - row.first
        elif isinstance(event, StepAbandoned):
            row.outcome, row.took = "FAILED", ts - row.first
        elif isinstance(event, StepTimedOut):
            row.outcome, row.took = "timed out", ts - row.first
        elif isinstance(event, StepRetrying) and row.outcome == "running":
            row.outcome = "retrying"
        elif isinstance(event, SleepStarted):
            row.outcome = f"sleeping until {clock(event.due)}"
        elif isinstance(event, WaitStarted):
            row.outcome = f"waiting for {event.signal!r}"
        elif isinstance(event, CompensationStarted):
            row.undo_first = row.undo_first or ts
            row.undo_attempts = max(row.undo_attempts, event.attempt)
            row.undo = f"undoing (attempt {event.attempt})"
        elif isinstance(event, CompensationFailed) and not event.due:
            row.undo = f"FAILED after {event.attempt} attempt(s)"
        elif isinstance(event, StepCompensated):
            row.undo = f"undone in {duration(ts - row.undo_first)}"
            if row.undo_attempts > 1:
                row.undo += f" ({row.undo_attempts} attempts)"
    return rows


def timeline(
    saga_id: str,
    entries: Sequence[HistoryEntry],
    definition: Saga | None = None,
    marks: Sequence[tuple[float, str]] = (),
) -> str:
    """One saga's correlated history across participants, then a table of its steps.

    ``marks`` are ``(wall-clock time, text)`` moments (a recovery, say) shown in place when
    they fall within the saga's lifetime.
    """
    if not entries:
        return f"saga {saga_id}: no events"
    every = entries  # with the entries of its child sagas, if any (nested in the table)
    entries = [e for e in every if e.saga_id in ("", saga_id)] or list(every)
    summary = summarize_events(saga_id, [(e.ts, e.event) for e in entries])
    start = entries[0].ts
    mode = "native choreography" if summary.mode == "native" else summary.mode
    head = f"saga {saga_id}: {summary.saga} v{summary.version}, {mode}, {summary.status}"
    if summary.latency is not None:
        head += f" in {duration(summary.latency)}"
    lines = [head]
    first = entries[0].event
    if isinstance(first, SagaStarted):
        lines.append(f"  input:  {compact(first.input, 100)}")
    if summary.reason:
        lines.append(f"  reason: {summary.reason}")
    native = summary.mode == "native"
    if summary.status is SagaStatus.STUCK and summary.last_error:
        lines.append(f"  last error: {summary.last_error}")
    if not summary.status.terminal:
        lines.append(f"  now:    {summary.where()}")
    lines.append("")
    rows = []
    pending = sorted(m for m in marks if start <= m[0] <= every[-1].ts)
    results: dict[str, dict[str, Any]] = {}  # per saga (its children too): results so far
    for entry in every:
        while pending and pending[0][0] <= entry.ts:
            ts, text = pending.pop(0)
            rows.append([f"+{duration(ts - start)}", "--", "-- playground --", text])
        if entry.saga_id not in ("", saga_id):  # a child saga's entry, nested under its step
            child = entry.saga_id.removeprefix(f"{saga_id}/")
            what, detail = describe(entry, _nested(definition, child))
            detail += reads(entry.event, results.setdefault(entry.saga_id, {}))
            rows.append(
                [f"+{duration(entry.ts - start)}", f"{child}> {entry.source}", what, detail]
            )
            continue
        special = (
            native_row(entry)
            if native
            else choreography_row(entry, definition)
            if summary.mode == "choreography"
            else None
        )
        who, what, detail = special or (entry.source, *describe(entry, definition))
        if not native:
            detail += reads(entry.event, results.setdefault(saga_id, {}), definition)
        rows.append([f"+{duration(entry.ts - start)}", who, what, detail])
    lines.append(table(["time", "who", "what", "detail"], rows))
    lines.append("")
    if native:
        lines.append(_native_events(entries))
        return "\n".join(lines)
    step_rows = _step_rows(entries, definition)
    table_rows = []
    for index, (name, row) in enumerate(step_rows.items(), 1):
        who, action = owner(name, definition)
        handler = f"{who}.{action}"
        if definition is not None and name in {s.name for s in definition.steps}:
            handler = handler_of(definition.step(name))
        table_rows.append(
            [
                _number(name, definition) or index,
                name,
                handler,
                row.attempts or "-",
                row.outcome,
                "-" if row.took is None else duration(row.took),
                row.undo,
            ]
        )
    heads = ["#", "step", "handler", "attempts", "outcome", "took", "compensation"]
    lines.append(table(heads, table_rows))
    return "\n".join(lines)


def reads(event: Any, seen: dict[str, Any], definition: Saga | None = None) -> str:
    """The results a step's command carries (``ctx.results``: those of the earlier stages'
    steps, a compensation's own too), and notes a success's result in ``seen``: shown on the
    step's start, so the timeline says which values flowed where."""
    if isinstance(event, StepSucceeded):
        seen[event.step] = event.result
        return ""
    if not isinstance(event, StepStarted | CompensationStarted) or not seen:
        return ""
    names = list(seen)
    if definition is not None and event.step in {s.name for s in definition.steps}:
        allowed = {*definition.before(event.step)}
        if isinstance(event, CompensationStarted):
            allowed.add(event.step)
        names = [name for name in names if name in allowed]
    given = ", ".join(f"{name}={compact(seen[name], 30)}" for name in names)
    return f"; reads {given}" if given else ""


def _nested(definition: Saga | None, path: str) -> Saga | None:
    """The definition of the child saga at ``path`` (``step/step...``) below ``definition``."""
    for step in path.split("/"):
        if definition is None or step not in {s.name for s in definition.steps}:
            return None
        child = child_of(definition.step(step))
        definition = child if isinstance(child, Saga) else None
    return definition


def _group_note(step: str, definition: Saga | None) -> str:
    """`` (group 1, at once with hotel, car)`` for a member of a parallel group."""
    if definition is None or step not in {s.name for s in definition.steps}:
        return ""
    found = definition.step(step)
    if not found.group:
        return ""
    siblings = [s.name for s in definition.stages[definition.stage(step)] if s.name != step]
    return f" (group {found.group}, at once with {', '.join(siblings)})"


def _number(step: str, definition: Saga | None) -> str:
    """A step's place in the table: its stage, lettered within a parallel group (2a, 2b)."""
    if definition is None or step not in {s.name for s in definition.steps}:
        return ""
    stage = definition.stages[definition.stage(step)]
    if len(stage) == 1 and not stage[0].group:
        return str(definition.stage(step) + 1)
    letter = "abcdefghijklmnopqrstuvwxyz"[[s.name for s in stage].index(step) % 26]
    return f"{definition.stage(step) + 1}{letter}"
