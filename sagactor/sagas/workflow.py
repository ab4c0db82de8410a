"""The workflow graph of a native :class:`Choreography`, derived from the ``@on`` reactions.

Each participant declares what it reacts to and what it may publish then
(``@on(OrderCreated, emits=(InventoryReserved, InventoryFailed))``); :func:`reactions_of`
collects that as plain data, so this module needs no participant. From it: the event graph,
its check (an event nobody handles, a participant whose work has no compensation path, a
cycle, a cancel that would not undo everything), and the plan a cancel follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .definition import Choreography

__all__ = [
    "Reactions",
    "cancel_plan",
    "check",
    "event_graph",
    "event_types",
    "subscribers",
]

Reactions = Mapping[str, Mapping[type[Any], tuple[type[Any], ...]]]
"""``participant name -> {event type it reacts to: the event types it may publish then}``."""

Graph = Mapping[type[Any], set[type[Any]]]


def subscribers(reactions: Reactions) -> dict[type[Any], list[str]]:
    """``event type -> the participants that react to it``."""
    table: dict[type[Any], list[str]] = {}
    for name, reacts in reactions.items():
        for kind in reacts:
            table.setdefault(kind, []).append(name)
    return table


def event_graph(reactions: Reactions) -> dict[type[Any], set[type[Any]]]:
    """``event -> events that a reaction to it may publish``, from the ``emits`` declarations."""
    graph: dict[type[Any], set[type[Any]]] = {}
    for reacts in reactions.values():
        for kind, emits in reacts.items():
            graph.setdefault(kind, set()).update(emits)
    return graph


def event_types(choreography: Choreography, reactions: Reactions) -> dict[str, type[Any]]:
    """Every event type of the workflow by name (to decode journaled events)."""
    known = [choreography.start, *choreography.completed, *choreography.failed]
    known += [choreography.cancel] if choreography.cancel is not None else []
    for source, targets in event_graph(reactions).items():
        known += [source, *targets]
    return {kind.__name__: kind for kind in known}


def _reachable(graph: Graph, roots: Iterable[type[Any]]) -> set[type[Any]]:
    seen: set[type[Any]] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def _failures(graph: Graph, choreography: Choreography) -> tuple[set[type[Any]], set[type[Any]]]:
    """The events the workflow can reach, and its failures: events after which it can no
    longer complete (the cancel event and what follows it among them)."""
    roots = [choreography.start, *([choreography.cancel] if choreography.cancel else [])]
    reachable = _reachable(graph, roots)
    succeeds = {k for k in reachable if _reachable(graph, [k]) & set(choreography.completed)}
    return reachable, {k for k in reachable - set(choreography.completed) if k not in succeeds}


def check(choreography: Choreography, reactions: Reactions) -> list[str]:
    """What is wrong with the workflow the participants' reactions make; empty if nothing.

    Reports an event no participant handles (and that is not terminal), a participant whose
    work can be followed by a failure it does not react to (no compensation path), cycles, and
    a cancel event that would not undo every participant's work.
    """
    graph = event_graph(reactions)
    handled = subscribers(reactions)
    terminal = set(choreography.completed) | set(choreography.failed)
    problems = []
    if choreography.start not in handled:
        problems.append(f"no participant reacts to the start event {choreography.start.__name__}")
    reachable, failures = _failures(graph, choreography)
    for kind in sorted(reachable - terminal - set(handled), key=lambda t: t.__name__):
        publishers = sorted(
            name
            for name, reacts in reactions.items()
            if any(kind in emits for emits in reacts.values())
        )
        problems.append(
            f"event {kind.__name__} (published by {', '.join(publishers) or 'cancel'}) "
            "is handled by no participant"
        )
    for name, reacts in reactions.items():
        for kind, emits in reacts.items():
            if kind in failures or kind not in reachable:
                continue
            after_work = _reachable(graph, [e for e in emits if e not in failures]) & failures
            if after_work and not set(reacts) & after_work:
                names = ", ".join(sorted(f.__name__ for f in after_work))
                problems.append(
                    f"participant {name!r} reacts to {kind.__name__} "
                    f"but to none of the failures that can follow its work ({names}): "
                    "no compensation path"
                )
    if choreography.cancel is not None:
        problems += _cancel_problems(choreography, choreography.cancel, reactions, graph)
    problems += _cycles(graph, choreography.start)
    if choreography.cancel is not None:
        problems += [p for p in _cycles(graph, choreography.cancel) if p not in problems]
    return problems


def cancel_plan(
    choreography: Choreography, reactions: Reactions
) -> tuple[frozenset[str], frozenset[str]]:
    """The event types after which a cancel comes too late (the workflow can no longer fail:
    past its point of no return) or is moot (it can no longer complete: already undoing)."""
    graph = event_graph(reactions)
    reachable, failures = _failures(graph, choreography)
    committed = {k for k in reachable - failures if not _reachable(graph, [k]) & failures}
    return frozenset(k.__name__ for k in committed), frozenset(k.__name__ for k in failures)


def _cancel_problems(
    choreography: Choreography, cancel: type[Any], reactions: Reactions, graph: Graph
) -> list[str]:
    """A cancel must end the workflow as failed and reach every participant with work to undo."""
    undo = _reachable(graph, [cancel])
    name = cancel.__name__
    problems = []
    if undo & set(choreography.completed):
        problems.append(f"the cancel event {name} can lead to a completed event")
    elif not undo & set(choreography.failed):
        problems.append(f"the cancel event {name} leads to none of the failed events")
    _, failures = _failures(graph, choreography)
    for participant, reacts in reactions.items():
        if set(reacts) & undo:
            continue
        for kind, emits in reacts.items():
            after_work = _reachable(graph, [e for e in emits if e not in failures]) & failures
            if kind not in failures and after_work:
                problems.append(
                    f"participant {participant!r} reacts to {kind.__name__} "
                    f"but to nothing that follows the cancel event {name}: a cancel would "
                    "leave its work undone"
                )
                break
    return problems


def _cycles(graph: Graph, start: type[Any]) -> list[str]:
    found: list[str] = []
    path: list[type[Any]] = []
    done: set[type[Any]] = set()

    def visit(node: type[Any]) -> None:
        if node in path:
            loop = [*path[path.index(node) :], node]
            found.append("cycle: " + " -> ".join(k.__name__ for k in loop))
            return
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ()), key=lambda t: t.__name__):
            visit(nxt)
        path.pop()
        done.add(node)

    visit(start)
    return found
