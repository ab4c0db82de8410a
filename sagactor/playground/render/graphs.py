"""Workflow graphs as text: a step list with its compensation path, choreography routing,
and a native choreography's event graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...sagas.definition import Saga, Step
from .basics import duration, table_text

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
        "before it are undone from the bottom up"
        + (f"; deadline {duration(saga.deadline)}" if saga.deadline else ""),
        "",
        "  (start)",
    ]
    column = 2 + w_label + 2 + w_handler + len("  --fails-->  ")
    for i, step in enumerate(saga.steps):
        notes = _step_notes(step)
        up = i > 0 and undo_target(saga, i) is not None and not step.retriable
        below = ("|  " + notes) if notes else "|"
        connector = "   " + below
        lines.append(_join(connector, column, "^" if up else ""))
        target = undo_target(saga, i)
        if step.retriable:
            right = "(retried)"
        elif target is None:
            right = "(compensated)"
        else:
            right = (
                f"undo {target + 1}. {saga.steps[target].name}  ({saga.steps[target].participant})"
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
