"""Text renderers of the playground: tables, timelines, workflow graphs, stats, values.

Every function here is pure: it takes data (history entries, summaries, definitions) and
returns text, so each can be tested without a runtime. Output is plain ASCII.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgspec

from ..actors.faults import Fault
from ..messages import (
    CompensationFailed,
    CompensationStarted,
    EventDispatched,
    Handled,
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaResumed,
    SagaStarted,
    SagaStatus,
    SagaStuck,
    StepCompensated,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
)
from ..persistence.journal import Record
from ..runtime import HistoryEntry
from ..sagas.definition import Saga, Step
from .journalview import SAGA_EVENT_TYPES, Dispatched, SagaSummary, summarize_events

__all__ = [
    "Batch",
    "clock",
    "compact",
    "duration",
    "faults_table",
    "graph",
    "inspect_report",
    "native_graph",
    "percentile",
    "pretty",
    "progress_bar",
    "records_table",
    "sagas_table",
    "stats",
    "status_counts",
    "subscriptions",
    "table",
    "timeline",
]

STATUS_ORDER = [s.value for s in SagaStatus]


# -- basics ------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: int = 2) -> str:
    return table_text(headers, rows, indent=indent)


def table_text(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: int = 2) -> str:
    """Left-aligned columns, numbers right-aligned, two spaces apart."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [
        bool(body) and all(_is_number(row[i]) for row in body if row[i] not in ("", "-"))
        for i in range(len(headers))
    ]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return (pad + "  ".join(parts)).rstrip()

    return "\n".join([line(list(headers)), *(line(row) for row in body)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def duration(seconds: float) -> str:
    """``0.42ms``, ``12.3ms``, ``1.23s``, ``2m03s``."""
    seconds = round(seconds, 9)  # timestamp differences: 0.000999999 is 1 ms
    if seconds < 0.001:
        return f"{seconds * 1000:.2f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def clock(ts: float) -> str:
    """Local wall-clock time with milliseconds: ``14:03:07.123``."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def _plain(value: Any) -> Any:
    """Builtins for display: Structs as dicts (no tag), Raw msgpack decoded, enums as values."""
    if isinstance(value, msgspec.Raw):
        try:
            return msgspec.msgpack.decode(value)
        except msgspec.DecodeError:
            return "<undecodable>"
    if isinstance(value, msgspec.Struct):
        return {f: _plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        return msgspec.to_builtins(value, str_keys=True)
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def compact(value: Any, limit: int = 72) -> str:
    """A one-line rendering of any value (Structs, Raw msgpack, containers), cut at ``limit``."""
    text = _flat(_plain(value)).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pretty(value: Any, *, max_items: int = 12) -> str:
    """An indented rendering of a (state) value; long containers are cut with a count."""
    lines: list[str] = []
    _pretty(_plain(value), 0, lines, max_items)
    return "\n".join(lines)


def _pretty(value: Any, depth: int, lines: list[str], max_items: int) -> None:
    pad = "  " * depth
    if isinstance(value, dict):
        if not value:
            lines.append(pad + "{}")
        for shown, (key, item) in enumerate(value.items()):
            if shown == max_items:
                lines.append(f"{pad}... {len(value) - max_items} more")
                break
            if isinstance(item, dict | list) and item and len(_flat(item)) > 60:
                lines.append(f"{pad}{key}: ({len(item)} entries)")
                _pretty(item, depth + 1, lines, max_items)
            else:
                lines.append(f"{pad}{key}: {compact(item, 100)}")
    elif isinstance(value, list):
        if not value:
            lines.append(pad + "[]")
        for shown, item in enumerate(value):
            if shown == max_items:
                lines.append(f"{pad}... {len(value) - max_items} more")
                break
            lines.append(f"{pad}- {compact(item, 100)}")
    else:
        lines.append(pad + compact(value, 100))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; ``nan`` for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def progress_bar(done: int, total: int, label: str, width: int = 30) -> str:
    """``started [########......] 400/1000 (40%)``."""
    fraction = done / total if total else 1.0
    filled = int(width * fraction)
    return f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({fraction:.0%})"


# -- timeline ------------------------------------------------------------------------------------


def _owner(step: str, definition: Saga | None) -> tuple[str, str]:
    """(participant, action) of a step, ``("?", step)`` without a definition."""
    if definition is not None:
        try:
            found = definition.step(step)
        except KeyError:
            return "?", step
        return found.participant, found.action
    return "?", step


DISPATCHER = "dispatcher"
"""Who journals a choreography saga's stream: it routes events, it decides nothing."""


def choreography_row(entry: HistoryEntry, definition: Saga | None) -> tuple[str, str, str] | None:
    """(who, what, detail) of a choreography saga event: participants publish their outcomes,
    the dispatcher delivers them to the subscribers. None for other entries."""
    event = entry.event
    if isinstance(event, StepStarted):
        who, action = _owner(event.step, definition)
        return DISPATCHER, "deliver", f"to {who}: {action} ({event.step}, attempt {event.attempt})"
    if isinstance(event, CompensationStarted):
        who, action = _owner(event.step, definition)
        detail = f"to {who}: undo {action} ({event.step}, attempt {event.attempt})"
        return DISPATCHER, "deliver", detail
    published: tuple[str, str] | None = None
    if isinstance(event, StepSucceeded):
        published = ("step ok", f"{event.step} => {compact(event.result, 60)}")
    elif isinstance(event, StepFailed):
        published = ("step FAILED", f"{event.step}: {event.reason}")
    elif isinstance(event, StepCompensated):
        published = ("compensated", event.step)
    elif isinstance(event, CompensationFailed):
        published = ("undo FAILED", f"{event.step} attempt {event.attempt}: {event.error}")
    if published is not None:
        step = getattr(event, "step", "")
        who = _owner(step, definition)[0] if definition is not None else "?"
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
        who, action = _owner(event.step, definition)
        return "run step", f"{event.step} -> {who}.{action} (attempt {event.attempt})"
    if isinstance(event, StepSucceeded):
        return "step ok", f"{event.step} => {compact(event.result, 60)}"
    if isinstance(event, StepFailed):
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
        who, action = _owner(event.step, definition)
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
    if isinstance(event, SagaResumed):
        return "saga resumed", f"by {event.by}"
    if isinstance(event, Handled):
        reason = f": {event.reason}" if event.reason else ""
        return f"handled {event.kind}", f"{event.step} {event.outcome.value}{reason}"
    return f"  {entry.type}", compact(event, 60)


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
        elif isinstance(event, StepFailed):
            row.outcome, row.took = "FAILED", ts - row.first
        elif isinstance(event, StepTimedOut):
            row.outcome, row.took = "timed out", ts - row.first
        elif isinstance(event, StepRetrying) and row.outcome == "running":
            row.outcome = "retrying"
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
    pending = sorted(m for m in marks if start <= m[0] <= entries[-1].ts)
    for entry in entries:
        while pending and pending[0][0] <= entry.ts:
            ts, text = pending.pop(0)
            rows.append([f"+{duration(ts - start)}", "--", "-- playground --", text])
        special = (
            native_row(entry)
            if native
            else choreography_row(entry, definition)
            if summary.mode == "choreography"
            else None
        )
        who, what, detail = special or (entry.source, *describe(entry, definition))
        rows.append([f"+{duration(entry.ts - start)}", who, what, detail])
    lines.append(table(["time", "who", "what", "detail"], rows))
    lines.append("")
    if native:
        lines.append(_native_events(entries))
        return "\n".join(lines)
    step_rows = _step_rows(entries, definition)
    table_rows = []
    for index, (name, row) in enumerate(step_rows.items(), 1):
        who, action = _owner(name, definition)
        table_rows.append(
            [
                index,
                name,
                f"{who}.{action}",
                row.attempts or "-",
                row.outcome,
                "-" if row.took is None else duration(row.took),
                row.undo,
            ]
        )
    lines.append(
        table(["#", "step", "handler", "attempts", "outcome", "took", "compensation"], table_rows)
    )
    return "\n".join(lines)


# -- workflow graph ------------------------------------------------------------------------------


def _step_notes(step: Step) -> str:
    notes = []
    if step.retry.max_attempts > 1:
        notes.append(f"retry x{step.retry.max_attempts}, backoff {duration(step.retry.backoff)}")
    if step.timeout:
        notes.append(f"timeout {duration(step.timeout)} (then undone too)")
    if not step.compensable:
        notes.append("no undo")
    return ", ".join(notes)


def undo_target(saga: Saga, index: int) -> int | None:
    """The step undone first when step ``index`` fails: the last compensable one before it."""
    for earlier in range(index - 1, -1, -1):
        if saga.steps[earlier].compensable:
            return earlier
    return None


def graph(saga: Saga) -> str:
    """The definition's workflow: steps down the left, the compensation path up the right."""
    label = [f"{i}. {s.name}" for i, s in enumerate(saga.steps, 1)]
    handler = [f"{s.participant}.{s.action}" for s in saga.steps]
    w_label = max(len(x) for x in label)
    w_handler = max(len(x) for x in handler)
    lines = [
        f"{saga.name} v{saga.version}: {len(saga.steps)} steps; when a step fails, the steps "
        "before it are undone from the bottom up",
        "",
        "  (start)",
    ]
    column = 2 + w_label + 2 + w_handler + len("  --fails-->  ")
    for i, step in enumerate(saga.steps):
        notes = _step_notes(step)
        up = i > 0 and undo_target(saga, i) is not None
        below = ("|  " + notes) if notes else "|"
        connector = "   " + below
        lines.append(_join(connector, column, "^" if up else ""))
        target = undo_target(saga, i)
        right = (
            "(compensated)"
            if target is None
            else f"undo {target + 1}. {saga.steps[target].name}  ({saga.steps[target].participant})"
        )
        lines.append(
            f"  {label[i].ljust(w_label)}  {handler[i].ljust(w_handler)}  --fails-->  {right}"
        )
    lines.append("   |")
    lines.append("  (completed)")
    return "\n".join(lines)


def subscriptions(saga: Saga, table: Mapping[tuple[str, str], Sequence[Any]]) -> str:
    """A choreography's routing table: which participant reacts to which event.

    ``table`` maps ``(event type, step)`` to reactions with ``participant``, ``kind`` and
    ``step`` (what :func:`sagactor.sagas.choreography.subscriptions` derives from the steps).
    """
    rows = []
    for (event, step), reactions in table.items():
        name = f"{event}({step})" if step else event
        if not reactions:
            rows.append([name, "- (nothing left to undo: the saga ends compensated)"])
        for reaction in reactions:
            handler = _owner(reaction.step, saga)[1]
            undo = "undo " if reaction.kind == "compensation" else ""
            rows.append([name, f"{reaction.participant}: {undo}{handler} ({reaction.step})"])
    head = (
        f"{saga.name} v{saga.version} in choreography: who reacts to which event "
        "(derived from the steps; the dispatcher routes, decides nothing)"
    )
    return head + "\n" + table_text(["event", "reaction"], rows)


@dataclass(frozen=True, slots=True)
class Reaction:
    """A native choreography subscription: ``participant.method`` reacts to ``event`` and may
    publish ``emits``."""

    event: str
    participant: str
    method: str
    emits: tuple[str, ...]


def event_order(start: str, reactions: Sequence[Reaction]) -> list[str]:
    """Every event of the graph, breadth first from ``start`` (then any unreachable ones)."""
    order = [start]
    for event in order:  # grows while we walk it
        for reaction in reactions:
            if reaction.event == event:
                order += [e for e in reaction.emits if e not in order]
    rest = [e for r in reactions for e in (r.event, *r.emits) if e not in order]
    return order + list(dict.fromkeys(rest))


def native_graph(
    name: str,
    start: str,
    completed: Sequence[str],
    failed: Sequence[str],
    reactions: Sequence[Reaction],
    problems: Sequence[str],
) -> str:
    """A native choreography's event graph (from the ``@on`` subscriptions), then its check."""
    lines = [
        f"{name}: native choreography; starts with {start}, completes with "
        f"{' | '.join(completed)}" + (f", fails with {' | '.join(failed)}" if failed else ""),
        "",
    ]
    by_event: dict[str, list[Reaction]] = {}
    for reaction in reactions:
        by_event.setdefault(reaction.event, []).append(reaction)
    for event in event_order(start, reactions):
        tag = " (completed)" if event in completed else " (failed)" if event in failed else ""
        lines.append(f"  {event}{tag}")
        for r in by_event.get(event, []):
            emits = " | ".join(r.emits) or "nothing"
            lines.append(f"    -> {r.participant}.{r.method}, may publish {emits}")
        if not by_event.get(event) and not tag:
            lines.append("    -> nobody reacts")
    lines.append("")
    if problems:
        lines.append(f"check: {len(problems)} problem(s)")
        lines += [f"  - {p}" for p in problems]
    else:
        lines.append("check: every event is handled, every piece of work has a compensation path")
    return "\n".join(lines)


def _join(left: str, column: int, right: str) -> str:
    if not right:
        return left
    return left.ljust(column) + right if len(left) < column else left + "  " + right


# -- listings --------------------------------------------------------------------------------


def status_counts(summaries: Iterable[SagaSummary]) -> dict[str, int]:
    """Counts by status, in the order running, compensating, completed, compensated, stuck."""
    counts = Counter(s.status.value for s in summaries)
    return {status: counts[status] for status in STATUS_ORDER if counts[status]}


def _counts_line(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "none"


def sagas_table(summaries: Sequence[SagaSummary], shown: Sequence[SagaSummary]) -> str:
    """A header with counts by status, then one row per shown saga."""
    total = len(summaries)
    lines = [f"{total} saga(s): {_counts_line(status_counts(summaries))}"]
    if shown:
        rows = [
            [
                s.saga_id,
                s.saga,
                s.mode,
                s.status.value,
                f"{len(s.done)}",
                "-" if s.latency is None else duration(s.latency),
                compact(s.where() if s.status is not SagaStatus.COMPLETED else "", 70),
            ]
            for s in shown
        ]
        lines.append(table(["id", "saga", "mode", "status", "done", "took", "note"], rows))
    return "\n".join(lines)


def faults_table(faults: Sequence[tuple[tuple[str, str, str], Fault]]) -> str:
    if not faults:
        return "no faults injected"
    rows = [[p, a, k, f.describe(), f.fired] for (p, k, a), f in faults]
    return table(["participant", "action", "on", "fault", "fired"], rows)


def records_table(records: Sequence[Record], events: Sequence[Any]) -> str:
    rows = [
        [r.position, clock(r.ts), r.stream, r.seq, r.type, compact(e, 60)]
        for r, e in zip(records, events, strict=True)
    ]
    return table(["pos", "time", "stream", "seq", "type", "data"], rows)


# -- stats ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """The last ``start`` of many sagas, as the playground measured it."""

    count: int
    finished: int
    seconds: float


def _latency_line(values: Sequence[float]) -> str:
    return "  ".join(
        f"{name} {duration(percentile(values, q))}"
        for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
    )


def stats(summaries: Sequence[SagaSummary], batch: Batch | None = None) -> str:
    """Counts by status, latency percentiles, throughput, per-step durations."""
    lines = [f"sagas: {len(summaries)} ({_counts_line(status_counts(summaries))})"]
    modes = Counter(s.mode for s in summaries)
    if modes:
        lines.append("modes: " + ", ".join(f"{n} {mode}" for mode, n in sorted(modes.items())))
    finished = [s for s in summaries if s.latency is not None]
    if finished:
        latencies = [s.latency for s in finished if s.latency is not None]
        lines.append(
            f"latency, start to end ({len(finished)} finished): {_latency_line(latencies)}"
        )
        for status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
            some = [s.latency for s in finished if s.status is status and s.latency is not None]
            if some and len(some) != len(finished):
                lines.append(f"  {status.value:<12} {_latency_line(some)}")
        window = max(s.ended for s in finished) - min(s.started for s in finished)
        if window > 0:
            lines.append(
                f"throughput over the journal: {len(finished)} finished in {duration(window)}"
                f" = {len(finished) / window:.0f} sagas/s"
            )
    if batch is not None and batch.seconds > 0:
        lines.append(
            f"last start: {batch.finished} of {batch.count} finished in {duration(batch.seconds)}"
            f" = {batch.finished / batch.seconds:.0f} sagas/s"
        )
    per_step: dict[str, list[float]] = {}
    for summary in summaries:
        for step, seconds in summary.step_seconds.items():
            per_step.setdefault(step, []).append(seconds)
    if per_step:
        lines.append("steps (action round trip, succeeded attempts):")
        rows = [
            [
                step,
                len(values),
                duration(percentile(values, 50)),
                duration(percentile(values, 99)),
            ]
            for step, values in per_step.items()
        ]
        lines.append(table(["step", "count", "p50", "p99"], rows, indent=4))
    return "\n".join(lines)


# -- inspect -----------------------------------------------------------------------------------


def inspect_report(
    path: str,
    summaries: Sequence[SagaSummary],
    participants: Mapping[str, int],
    *,
    list_all: bool = False,
) -> str:
    """``sagactor inspect``: sagas by status, participants, and the sagas needing attention."""
    lines = [f"journal {path}"]
    lines.append(f"sagas: {len(summaries)} ({_counts_line(status_counts(summaries))})")
    kinds = Counter(f"{s.saga} v{s.version}" for s in summaries)
    if kinds:
        lines.append("  by definition: " + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())))
        modes = Counter(s.mode for s in summaries)
        lines.append("  by mode: " + ", ".join(f"{m}: {n}" for m, n in sorted(modes.items())))
    if participants:
        lines.append(
            "participants: "
            + ", ".join(f"{name} ({n} records)" for name, n in sorted(participants.items()))
        )
    if summaries:
        first = min(s.started for s in summaries)
        last = max(max(s.ended, s.started) for s in summaries)
        lines.append(f"first start {clock(first)}, last end {clock(last)} (local time)")
    attention = [s for s in summaries if s.status is SagaStatus.STUCK or not s.status.terminal]
    if attention:
        lines.append("")
        lines.append(f"needing attention: {len(attention)}")
        rows = [[s.saga_id, s.saga, s.status.value, clock(s.started), s.where()] for s in attention]
        lines.append(table(["id", "saga", "status", "started", "why"], rows))
        if any(not s.status.terminal for s in attention):
            lines.append(
                "  in-flight sagas resume when a runtime reopens this journal "
                "(sagactor play DB, then `wait`)"
            )
        if any(s.status is SagaStatus.STUCK for s in attention):
            lines.append("  a stuck saga's compensation gave up: fix the cause, then `resume ID`")
    elif summaries:
        lines.append("nothing stuck, nothing in flight")
    if list_all and summaries:
        lines.append("")
        lines.append(sagas_table(summaries, summaries))
    return "\n".join(lines)
