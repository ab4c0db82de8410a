"""Workflow graphs as text: a step list with its compensation path, choreography routing,
and a native choreography's event graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...sagas.definition import Saga, Step
from .basics import duration, table_text
from .children import child_lines, handler_of

__all__ = [
    "Reaction",
    "event_order",
    "graph",
    "native_graph",
    "owner",
    "subscriptions",
    "undo_target",
]


def owner(step: str, definition: Saga | None) -> tuple[str, str]:
    """(participant, action) of a step, ``("?", step)`` without a definition."""
    if definition is not None:
        try:
            found = definition.step(step)
        except KeyError:
            return "?", step
        return found.participant, found.action
    return "?", step


def _step_notes(step: Step) -> str:
    notes = []
    if step.pivot:
        notes.append("pivot: once it succeeds, the saga completes")
    if step.retriable:
        notes.append(
            f"retriable: retried until it succeeds (back-off up to "
            f"{duration(step.retry.max_backoff)}), never undone"
        )
    elif step.retry.max_attempts > 1:
        notes.append(f"retry x{step.retry.max_attempts}, backoff {duration(step.retry.backoff)}")
    if step.timeout:
        notes.append(f"timeout {duration(step.timeout)} (then undone too)")
    if not step.compensable and not step.retriable:
        notes.append("no undo")
    return ", ".join(notes)


def undo_target(saga: Saga, index: int) -> int | None:
    """The step undone first when step ``index`` fails: the last compensable one of an
    earlier stage (a parallel group's siblings are undone before it, see :func:`graph`)."""
    stage = saga.stage(saga.steps[index].name)
    for earlier in range(index - 1, -1, -1):
        step = saga.steps[earlier]
        if step.compensable and saga.stage(step.name) < stage:
            return earlier
    return None


def _undo_text(saga: Saga, target: int | None) -> str:
    if target is None:
        return "(compensated)"
    step = saga.steps[target]
    if step.group:
        members = [s.name for s in saga.stages[saga.stage(step.name)] if s.compensable]
        return f"undo group {step.group} ({', '.join(members)})"
    who = handler_of(step) if step.child is not None else step.participant
    return f"undo {target + 1}. {step.name}  ({who})"


def graph(saga: Saga) -> str:
    """The definition's workflow: steps down the left, the compensation path up the right."""
    label = [f"{i}. {s.name}" for i, s in enumerate(saga.steps, 1)]
    handler = [handler_of(s) for s in saga.steps]
    w_label = max(len(x) for x in label)
    w_handler = max(len(x) for x in handler)
    lines = [
        f"{saga.name} v{saga.version}: {len(saga.steps)} steps; when a step fails, the steps "
        "before it are undone from the bottom up"
        + (f"; deadline {duration(saga.deadline)}" if saga.deadline else ""),
        "",
        "  (start)",
    ]
    column = 2 + w_label + 2 + w_handler + len("  --fails-->  ")
    for i, step in enumerate(saga.steps):
        first = step.group and (i == 0 or saga.steps[i - 1].group != step.group)
        if first:
            lines.append("   |")
            lines.append(f"  +-- group {step.group}: at once; the saga goes on when all succeeded")
        notes = _step_notes(step)
        up = i > 0 and undo_target(saga, i) is not None and not step.retriable
        if step.group:
            connector = "  |" + ("   " + notes if notes else "")
        else:
            connector = "   " + (("|  " + notes) if notes else "|")
        if not first or notes:
            lines.append(_join(connector, column, "^" if up and not first else ""))
        target = undo_target(saga, i)
        if step.retriable:
            right = "(retried)"
        elif step.group:
            siblings = [s.name for s in saga.stages[saga.stage(step.name)] if s is not step]
            then = _undo_text(saga, target)
            right = f"undo {', '.join(siblings)} (done or in doubt), then {then}"
        else:
            right = _undo_text(saga, target)
        bar = "| " if step.group else "  "
        lines.append(
            f"  {bar}{label[i].ljust(w_label)}  {handler[i].ljust(w_handler)}  --fails-->  {right}"
        )
        last = step.group and (i + 1 == len(saga.steps) or saga.steps[i + 1].group != step.group)
        if last:
            lines.append(f"  +-- join group {step.group}")
    lines.append("   |")
    lines.append("  (completed)")
    return "\n".join(lines + child_lines(saga, graph))


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
            handler = owner(reaction.step, saga)[1]
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
    runs: tuple[str, ...] = ()  # orchestrated sagas it runs (a hybrid flow)


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
            runs = f", runs saga {', '.join(r.runs)}" if r.runs else ""
            lines.append(f"    -> {r.participant}.{r.method}{runs}, may publish {emits}")
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
