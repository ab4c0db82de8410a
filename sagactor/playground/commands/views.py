"""Looking inside: ``sagas``, ``show``, ``state``, ``tail``, ``graph``, ``mermaid``, ``stats``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...actors.participant import reactions_of
from ...messages import SagaStatus
from ...names import saga_stream
from ...runtime import HistoryEntry
from ...sagas.choreography import subscriptions
from ...sagas.definition import Choreography, Saga
from ...sagas.workflow import check
from .. import mermaid, render
from ..journalview import decode_record, last_records, mark_dispatched, summarize
from ..session import CommandError, Session, suggest
from .args import MODES, complete_participant, complete_saga_id, count, find_participant, find_saga
from .registry import UsageError, command

__all__ = [
    "SAGA_FILTERS",
    "cmd_graph",
    "cmd_mermaid",
    "cmd_sagas",
    "cmd_show",
    "cmd_state",
    "cmd_stats",
    "cmd_tail",
]

SAGA_FILTERS = (*(s.value for s in SagaStatus), "active", "all")


def _complete_sagas(shell: Session, before: Sequence[str]) -> list[str]:
    return list(SAGA_FILTERS)


@command(
    "sagas",
    usage="sagas [STATUS|active] [N|all]",
    summary="list sagas (the last 20 by default), with counts by status",
    details=f"STATUS is one of {', '.join(s.value for s in SagaStatus)}; "
    "active means running or compensating.",
    aliases=("ls",),
    complete=_complete_sagas,
)
def cmd_sagas(shell: Session, args: list[str]) -> None:
    status: str | None = None
    limit: int | None = 20
    for arg in args:
        if arg.isdigit():
            limit = count("sagas", arg, "N")
        elif arg == "all":
            limit = None
        elif arg in SAGA_FILTERS:
            status = arg
        else:
            raise UsageError("sagas", f"no status {arg!r}{suggest(arg, SAGA_FILTERS)}")
    rt = shell.live()
    summaries = summarize(rt.journal, rt.quarantined())
    shell.remember(s.saga_id for s in summaries)
    chosen = [
        s
        for s in summaries
        if status is None
        or s.status.value == status
        or (status == "active" and not s.status.terminal)
    ]
    shown = chosen if limit is None else chosen[-limit:]
    shell.emit(render.sagas_table(summaries, shown))
    if status is not None and not chosen:
        shell.emit(f"  (none {status})")
    if len(shown) < len(chosen):
        shell.emit(f"  (the last {len(shown)} of {len(chosen)}; `sagas all` lists every one)")


def _history(shell: Session, word: str) -> tuple[str, list[HistoryEntry], Saga | None]:
    """A saga's history, its dispatched events marked, and its step-list definition if any."""
    rt = shell.live()
    saga_id = shell.resolve_id(word)
    entries = rt.history(saga_id)
    positions = {r.position for r in rt.journal.read(saga_stream(saga_id))}
    entries = mark_dispatched(entries, positions)
    started = entries[0].event if entries else None
    name, version = getattr(started, "saga", None), getattr(started, "version", 0)
    definition = rt.definitions.exact(name, version) if isinstance(name, str) else None
    return saga_id, entries, definition if isinstance(definition, Saga) else None


def _reactions(shell: Session, choreography: Choreography) -> list[render.Reaction]:
    """The ``@on`` subscriptions reachable from the choreography's start event."""
    every = [
        render.Reaction(
            kind.__name__,
            p.participant_name,
            spec.method,
            tuple(e.__name__ for e in spec.emits),
            tuple(getattr(s, "name", str(s)) for s in spec.runs),
        )
        for p in shell.participant_objects.values()
        for kind, spec in type(p)._reactions.items()
    ]
    reachable, todo = set(), [choreography.start.__name__]
    while todo:
        event = todo.pop()
        if event not in reachable:
            reachable.add(event)
            todo += [e for r in every if r.event == event for e in r.emits]
    return [r for r in every if r.event in reachable]


@command(
    "show",
    usage="show ID",
    summary="one saga's timeline: steps, attempts, compensations, timings, across participants",
    details="ID may be the full id, its number (3 for order-3) or a unique prefix.",
    complete=complete_saga_id,
)
def cmd_show(shell: Session, args: list[str]) -> None:
    if len(args) != 1:
        raise UsageError("show", "name one saga id")
    saga_id, entries, definition = _history(shell, args[0])
    shell.emit(render.timeline(saga_id, entries, definition, shell.marks))


@command(
    "state",
    usage="state PARTICIPANT",
    summary="a participant's current state",
    complete=complete_participant,
)
def cmd_state(shell: Session, args: list[str]) -> None:
    if len(args) != 1:
        raise UsageError("state", "name one participant")
    rt = shell.live()
    participant = find_participant(shell, "state", args[0])
    shell.emit(f"{participant}:")
    shell.emit(render.pretty(rt.state(participant)).replace("\n", "\n  ").join(["  ", ""]))


@command(
    "tail",
    usage="tail [N]",
    summary="the journal's last N records (default 20)",
    details="Every record of every stream, in commit order: saga events and participant changes.",
)
def cmd_tail(shell: Session, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("tail", "takes at most a number of records")
    n = count("tail", args[0], "N") if args else 20
    rt = shell.live()
    records = last_records(rt.journal, n)
    if not records:
        shell.emit("the journal is empty")
        return
    shell.emit(render.records_table(records, [decode_record(r) for r in records]))


def _complete_graph(shell: Session, before: Sequence[str]) -> list[str]:
    return [*(s.name for s in shell.domain.sagas), "choreography"]


@command(
    "graph",
    usage="graph [SAGA] [choreography]",
    summary="draw a saga definition's workflow as text",
    details="Steps run down the left; when one fails, the compensations run up the right.\n"
    "With choreography: the events each participant reacts to, derived from the steps.",
    complete=_complete_graph,
)
def cmd_graph(shell: Session, args: list[str]) -> None:
    words = [a for a in args if a not in MODES]
    modes = {MODES[a] for a in args if a in MODES}
    if len(words) > 1 or len(modes) > 1:
        raise UsageError("graph", "name one saga definition, and at most one mode")
    saga = find_saga(shell, "graph", words[0] if words else None)
    if isinstance(saga, Choreography):
        problems = check(saga, reactions_of(shell.participant_objects.values()))
        shell.emit(
            render.native_graph(
                f"{saga.name} v{saga.version}",
                saga.start.__name__,
                [t.__name__ for t in saga.completed],
                [t.__name__ for t in saga.failed],
                _reactions(shell, saga),
                problems,
            )
        )
    elif modes == {"choreography"}:
        shell.emit(render.subscriptions(saga, subscriptions(saga)))
    else:
        shell.emit(render.graph(saga))


def _complete_mermaid(shell: Session, before: Sequence[str]) -> list[str]:
    return [*(s.name for s in shell.domain.sagas), *shell.recent_ids()] if not before else []


@command(
    "mermaid",
    usage="mermaid ID|SAGA [FILE]",
    summary="Mermaid: a sequence diagram of one saga run, or a flowchart of a definition",
    details="With FILE, the diagram is written there instead of printed.",
    complete=_complete_mermaid,
)
def cmd_mermaid(shell: Session, args: list[str]) -> None:
    if not 1 <= len(args) <= 2:
        raise UsageError("mermaid", "name a saga id or a saga definition")
    definition = shell.domain.saga(args[0])
    if isinstance(definition, Choreography):
        diagram = mermaid.native_flowchart(
            f"{definition.name} v{definition.version}",
            definition.start.__name__,
            [t.__name__ for t in definition.completed],
            [t.__name__ for t in definition.failed],
            _reactions(shell, definition),
        )
    elif definition is not None:
        diagram = mermaid.flowchart(definition)
    else:
        try:
            saga_id, entries, found = _history(shell, args[0])
        except CommandError as error:
            names = [s.name for s in shell.domain.sagas]
            raise CommandError(
                f"{error} and no saga definition {args[0]!r}{suggest(args[0], names)}"
            ) from None
        diagram = mermaid.sequence(saga_id, entries, found, list(shell.participant_objects))
    if len(args) == 2:
        Path(args[1]).write_text(diagram + "\n")
        shell.emit(f"wrote {len(diagram.splitlines())} lines of Mermaid to {args[1]}")
    else:
        shell.emit(diagram)


@command(
    "stats",
    usage="stats",
    summary="counts by status, latency percentiles, throughput, step durations",
)
def cmd_stats(shell: Session, args: list[str]) -> None:
    if args:
        raise UsageError("stats", "takes no arguments")
    rt = shell.live()
    shell.emit(render.stats(summarize(rt.journal), shell.batch))
    if rt.faults:
        shell.emit(f"faults injected: {len(rt.faults)} (`faults` lists them)")
