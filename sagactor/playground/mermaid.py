"""Mermaid exports: a sequence diagram of one saga run, a flowchart of a saga definition.

Pure functions of data (history entries, a definition); paste the text into any Mermaid
renderer (GitHub markdown, mermaid.live).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..messages import (
    CompensationFailed,
    CompensationStarted,
    Handled,
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaResumed,
    SagaStarted,
    SagaStuck,
    StepAbandoned,
    StepCompensated,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
)
from ..runtime import HistoryEntry
from ..sagas.definition import Saga
from .journalview import SAGA_EVENT_TYPES, Dispatched
from .mermaid_children import child_edges, handler_of, run_edges
from .render import Reaction, event_order

__all__ = ["flowchart", "native_flowchart", "node_id", "sequence", "text"]

COORDINATOR = "coordinator"
DISPATCHER = "dispatcher"

# Words Mermaid's sequence grammar reserves: a participant may not be called that.
_KEYWORDS = frozenset(
    {
        *("participant", "actor", "as", "end", "loop", "alt", "else", "opt", "par", "and"),
        *("rect", "critical", "break", "note", "over", "left", "right", "of", "box"),
        *("autonumber", "activate", "deactivate", "title", "links", "link", "properties"),
        *("details", "create", "destroy", "option"),
    }
)


_ENTITIES = {"#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;", '"': "#quot;"}


def text(value: str) -> str:
    """A message or label made safe for Mermaid (entity codes for ``# ; < > "``, one line)."""
    return re.sub(r'[#;<>"]', lambda m: _ENTITIES[m[0]], " ".join(value.split()))


def node_id(name: str) -> str:
    """An identifier Mermaid accepts for ``name`` (letters, digits, underscores)."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII) or "_"
    if ident[0].isdigit() or ident.lower() in _KEYWORDS:
        ident = "p_" + ident
    return ident


def _participants(
    entries: Sequence[HistoryEntry], definition: Saga | None, hub: str, order: Sequence[str]
) -> list[str]:
    names = [hub]
    if definition is not None:
        names += [s.participant for s in definition.steps]
    seen = {e.source for e in entries} - {COORDINATOR, "start"}
    names += [name for name in order if name in seen]
    names += [e.source for e in entries if e.source in seen]
    return list(dict.fromkeys(names))


def sequence(
    saga_id: str,
    entries: Sequence[HistoryEntry],
    definition: Saga | None = None,
    participants: Sequence[str] = (),
) -> str:
    """A ``sequenceDiagram`` of one run: commands, replies, compensations, state changes.

    In choreography, participants publish their outcomes and the dispatcher delivers them to
    the subscribers: each delivery is drawn as an asynchronous message from the publisher to
    the subscriber. ``participants`` orders the lifelines (else: the definition's steps, then
    first appearance).
    """
    first = entries[0].event if entries else None
    mode = first.mode if isinstance(first, SagaStarted) else "orchestration"
    choreography = mode == "choreography"
    hub = COORDINATOR if mode == "orchestration" else DISPATCHER
    names = _participants(entries, definition, hub, participants)
    ids = {name: node_id(name) for name in names}
    ids[COORDINATOR] = ids[hub]  # the runtime's name for the saga stream's writer
    owners: dict[str, str] = {}
    if definition is not None:
        owners = {s.name: s.participant for s in definition.steps}
    for entry in entries:  # without a definition, the inbox records tell who ran a step
        if isinstance(entry.event, Handled):
            owners.setdefault(entry.event.step, entry.source)
    actions = {s.name: s.action for s in definition.steps} if definition is not None else {}
    lines = ["sequenceDiagram", f"    title saga {text(saga_id)}"]
    for name in names:
        ident = ids[name]
        lines.append(
            f"    participant {ident}" if ident == name else f"    participant {ident} as {name}"
        )
    c = ids[COORDINATOR]

    def who(step: str) -> str:
        return ids.get(owners.get(step, ""), c)

    if choreography:
        _choreography(saga_id, entries, ids, who, actions, lines)
        return "\n".join(lines)
    if mode == "native":
        _native(saga_id, entries, ids, lines)
        return "\n".join(lines)
    for entry in entries:
        event = entry.event
        if isinstance(event, SagaStarted):
            note = f"{saga_id} started: {event.saga} v{event.version}, {event.mode}"
            lines.append(f"    Note over {c}: {text(note)}")
        elif isinstance(event, StepStarted):
            action = actions.get(event.step, event.step)
            message = f"{action} ({event.step}, attempt {event.attempt})"
            lines.append(f"    {c}->>{who(event.step)}: {text(message)}")
        elif isinstance(event, StepSucceeded):
            lines.append(f"    {who(event.step)}-->>{c}: {text(f'ok ({event.step})')}")
        elif isinstance(event, StepAbandoned):
            lines.append(f"    {who(event.step)}--x{c}: {text(f'failed: {event.reason}')}")
        elif isinstance(event, StepRetrying):
            message = f"error: {event.error} (will retry)"
            lines.append(f"    {who(event.step)}--x{c}: {text(message)}")
        elif isinstance(event, StepTimedOut):
            note = f"{event.step} timed out, in doubt"
            lines.append(f"    Note over {c},{who(event.step)}: {text(note)}")
        elif isinstance(event, CompensationStarted):
            action = actions.get(event.step, event.step)
            message = f"undo {action} ({event.step}, attempt {event.attempt})"
            lines.append(f"    {c}->>{who(event.step)}: {text(message)}")
        elif isinstance(event, StepCompensated):
            lines.append(f"    {who(event.step)}-->>{c}: {text(f'undone ({event.step})')}")
        elif isinstance(event, CompensationFailed):
            message = f"undo error: {event.error}" + ("" if event.due else " (giving up)")
            lines.append(f"    {who(event.step)}--x{c}: {text(message)}")
        elif isinstance(event, SagaCompleted):
            lines.append(f"    Note over {c}: completed")
        elif isinstance(event, SagaCompensated):
            lines.append(f"    Note over {c}: {text(f'compensated: {event.reason}')}")
        elif isinstance(event, SagaStuck):
            lines.append(f"    Note over {c}: {text(f'STUCK: {event.reason}')}")
        elif isinstance(event, SagaCancelled):
            lines.append(f"    Note over {c}: {text(f'cancelled: {event.reason}')}")
        elif isinstance(event, SagaResumed):
            lines.append(f"    Note over {c}: {text(f'resumed by {event.by}')}")
        elif not isinstance(event, Handled) and entry.source != COORDINATOR:
            lines.append(f"    Note right of {ids[entry.source]}: {text(entry.type)}")
    return "\n".join(lines)


def _choreography(
    saga_id: str,
    entries: Sequence[HistoryEntry],
    ids: dict[str, str],
    who: Callable[[str], str],
    actions: dict[str, str],
    lines: list[str],
) -> None:
    d = ids[DISPATCHER]
    trigger: tuple[str, str] = (d, "")  # (publisher, event) of the last published event
    delivered = True
    for entry in entries:
        event = entry.event
        published: str | None = None
        if isinstance(event, SagaStarted):
            note = f"{saga_id} started: {event.saga} v{event.version}, choreography"
            lines.append(f"    Note over {d}: {text(note)}")
            trigger, delivered = (d, "saga started"), True
        elif isinstance(event, StepSucceeded):
            published = f"{event.step} succeeded"
        elif isinstance(event, StepAbandoned):
            published = f"{event.step} failed: {event.reason}"
        elif isinstance(event, StepCompensated):
            published = f"{event.step} undone"
        elif isinstance(event, CompensationFailed):
            published = f"undo of {event.step} failed: {event.error}"
        elif isinstance(event, StepTimedOut):
            lines.append(f"    Note over {d},{who(event.step)}: {text(event.step)} timed out")
            trigger, delivered = (d, f"{event.step} timed out"), False
        elif isinstance(event, StepStarted | CompensationStarted):
            undo = "undo " if isinstance(event, CompensationStarted) else ""
            action = actions.get(event.step, event.step)
            cause = f"on {trigger[1]}: " if trigger[1] else ""
            message = f"{cause}{undo}{action} (attempt {event.attempt})"
            lines.append(f"    {trigger[0]}-){who(event.step)}: {text(message)}")
            delivered = True
        elif isinstance(event, SagaCompleted | SagaCompensated | SagaStuck | SagaCancelled):
            if not delivered:
                lines.append(f"    {trigger[0]}-){d}: {text(trigger[1])}")
                delivered = True
            end = {
                SagaCompleted: "completed",
                SagaCompensated: "compensated",
                SagaStuck: "STUCK",
                SagaCancelled: "cancelled",
            }[type(event)]
            reason = getattr(event, "reason", "")
            lines.append(f"    Note over {d}: {text(end + (': ' + reason if reason else ''))}")
        elif isinstance(event, SagaResumed):
            lines.append(f"    Note over {d}: {text(f'resumed by {event.by}')}")
        elif not isinstance(event, Handled) and entry.source != COORDINATOR:
            lines.append(f"    Note right of {ids[entry.source]}: {text(entry.type)}")
        if published is not None:
            if not delivered:
                lines.append(f"    {trigger[0]}-){d}: {text(trigger[1])}")
            trigger, delivered = (who(getattr(event, "step", "")), published), False


def _native(
    saga_id: str, entries: Sequence[HistoryEntry], ids: dict[str, str], lines: list[str]
) -> None:
    """Each dispatched event goes from its publisher to every participant that reacted to it;
    an event nobody reacted to (the end, usually) goes to the dispatcher."""
    d = ids[DISPATCHER]
    reacted: dict[str, list[str]] = {}
    for entry in entries:
        if isinstance(entry.event, Handled) and entry.event.kind == "on":
            reacted.setdefault(entry.event.step, []).append(entry.source)
    for entry in entries:
        event = entry.event
        if isinstance(event, SagaStarted):
            note = f"{saga_id} started: {event.saga} v{event.version}, native choreography"
            lines.append(f"    Note over {d}: {text(note)}")
        elif isinstance(event, Dispatched):
            publisher = d if entry.source == "start" else ids[entry.source]
            targets = reacted.pop(entry.type, None) or [DISPATCHER]
            for target in targets:
                lines.append(f"    {publisher}-){ids[target]}: {text(entry.type)}")
        elif isinstance(event, SagaCompleted | SagaCompensated | SagaStuck | SagaCancelled):
            reason = getattr(event, "reason", "")
            end = type(event).__name__.removeprefix("Saga").lower()
            lines.append(f"    Note over {d}: {text(end + (': ' + reason if reason else ''))}")
        elif not isinstance(event, (Handled, *SAGA_EVENT_TYPES)) and entry.source in ids:
            lines.append(f"    Note right of {ids[entry.source]}: {text(entry.type)}")


def native_flowchart(
    name: str,
    start: str,
    completed: Sequence[str],
    failed: Sequence[str],
    reactions: Sequence[Reaction],
) -> str:
    """A ``flowchart`` of a native choreography: events are nodes, each reaction an edge from
    the event it handles to each event it may publish, labelled with the participant."""
    lines = ["flowchart TD"]
    events = event_order(start, reactions)
    for event in events:
        ident = node_id(event)
        if event == start:
            lines.append(f'    {ident}(["{text(f"{name}: {event}")}"])')
        elif event in completed or event in failed:
            lines.append(f'    {ident}(["{text(event)}"])')
        else:
            lines.append(f'    {ident}["{text(event)}"]')
    for event in events:
        for r in (r for r in reactions if r.event == event):
            for emitted in r.emits:
                label = text(f"{r.participant}.{r.method}")
                lines.append(f"    {node_id(r.event)} -->|{label}| {node_id(emitted)}")
    return "\n".join(lines + run_edges(reactions, node_id, text))


def flowchart(saga: Saga) -> str:
    """A ``flowchart`` of a definition: the happy path, and where each failure compensates.

    A parallel group forks into its members and joins before the next stage; a member's
    failure undoes the group (its members done or in doubt), then the stages before it."""
    lines = ["flowchart TD", f'    start(["{text(f"{saga.name} v{saga.version}")}"])']
    number = {step.name: i for i, step in enumerate(saga.steps, 1)}
    for i, step in enumerate(saga.steps, 1):
        label = f"{i}. {step.name}<br/>{handler_of(step)}"
        if step.pivot:
            label += "<br/>pivot: no return"
        if step.retriable:
            label += "<br/>retried until it succeeds"
        elif step.retry.max_attempts > 1:
            label += f"<br/>retry x{step.retry.max_attempts}"
        if not step.compensable and not step.retriable:
            label += "<br/>no undo"
        lines.append(f'    s{i}["{_label(label)}"]')
    for stage in saga.stages:
        if stage[0].group:
            k = stage[0].group
            lines.append(f'    fork{k}{{{{"group {k}: at once"}}}}')
            lines.append(f'    join{k}{{{{"join: all succeeded"}}}}')
    lines.append('    completed(["completed"])')
    lines.append('    compensated(["compensated"])')
    undo = _undo_nodes(saga, number)
    for stage_index in reversed(range(len(saga.stages))):
        if stage_index in undo:
            node, title = undo[stage_index]
            lines.append(f'    {node}["{_label(title)}"]')
    if undo:
        lines.append('    stuck(["stuck"])')
    entry, exit_ = _ends(saga, number)
    lines.append(f"    start --> {entry[0]}")
    for index, stage in enumerate(saga.stages):
        if stage[0].group:
            k = stage[0].group
            for step in stage:
                lines.append(f"    fork{k} --> s{number[step.name]}")
                lines.append(f"    s{number[step.name]} -->|ok| join{k}")
        following = entry[index + 1] if index + 1 < len(saga.stages) else "completed"
        lines.append(f"    {exit_[index]} -->|ok| {following}")
    for i, step in enumerate(saga.steps, 1):
        if step.retriable:  # past the pivot: a failure is retried, nothing is undone
            lines.append(f"    s{i} -.->|fails: retried| s{i}")
            continue
        stage_index = saga.stage(step.name)
        own = undo.get(stage_index) if step.group else None
        target = own[0] if own else _below(undo, stage_index)
        lines.append(f"    s{i} -.->|fails| {target}")
        if step.timeout and step.compensable:
            lines.append(f"    s{i} -.->|times out| {undo[stage_index][0]}")
    for stage_index in reversed(range(len(saga.stages))):
        if stage_index in undo:
            node = undo[stage_index][0]
            lines.append(f"    {node} --> {_below(undo, stage_index)}")
            lines.append(f"    {node} -.->|gives up| stuck")
    return "\n".join(lines + child_edges(saga, text))


def _undo_nodes(saga: Saga, number: dict[str, int]) -> dict[int, tuple[str, str]]:
    """Per stage with something to undo: its compensation node (id, label)."""
    nodes = {}
    for index, stage in enumerate(saga.stages):
        undoable = [s for s in stage if s.compensable and not s.retriable]
        if not undoable:
            continue
        if stage[0].group:
            names = ", ".join(s.name for s in undoable)
            title = f"undo group {stage[0].group}: {names}<br/>(done or in doubt, last done first)"
            nodes[index] = (f"u{stage[0].group}", title)
        else:
            step = undoable[0]
            who = handler_of(step) if step.child is not None else step.participant
            nodes[index] = (f"c{number[step.name]}", f"undo {step.name}<br/>{who}")
    return nodes


def _below(undo: dict[int, tuple[str, str]], stage: int) -> str:
    """Where compensation goes after ``stage``: the nearest earlier stage with an undo."""
    earlier = [i for i in undo if i < stage]
    return undo[max(earlier)][0] if earlier else "compensated"


def _ends(saga: Saga, number: dict[str, int]) -> tuple[list[str], list[str]]:
    """Each stage's entry and exit node: its step, or its group's fork and join."""
    entry, exit_ = [], []
    for stage in saga.stages:
        if stage[0].group:
            entry.append(f"fork{stage[0].group}")
            exit_.append(f"join{stage[0].group}")
        else:
            entry.append(f"s{number[stage[0].name]}")
            exit_.append(f"s{number[stage[0].name]}")
    return entry, exit_


def _label(value: str) -> str:
    # Keep the <br/> line breaks, escape everything else.
    return "<br/>".join(text(part) for part in value.split("<br/>"))
