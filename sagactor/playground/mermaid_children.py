"""Child sagas and hybrid flows in the Mermaid flowcharts: a ``Child`` step links to its child
(a saga with its steps, or a choreography with its events), and a native reaction that runs
an orchestrated saga links to that saga."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..sagas.definition import Choreography, Saga
from .render.children import child_of, handler_of
from .render.graphs import Reaction

__all__ = ["child_edges", "handler_of", "run_edges"]


def child_edges(saga: Saga, text: Callable[[str], str]) -> list[str]:
    """Under a saga's flowchart: a node per child, linked from its step (``s<n>``)."""
    lines = []
    for number, step in enumerate(saga.steps, 1):
        child = child_of(step)
        if child is None:
            continue
        if isinstance(child, Choreography):
            ends = " | ".join(t.__name__ for t in child.completed)
            title = f"choreography {child.name}: {child.start.__name__} ... {ends}"
            label = f"publishes {child.start.__name__}, waits"
        elif isinstance(child, str):
            title, label = f"child saga {child}", "runs"
        else:
            steps = " -> ".join(s.name for s in child.steps)
            title, label = f"child saga {child.name}: {steps}", "runs, held till the end"
        lines.append(f'    k{number}[["{text(title)}"]]')
        lines.append(f"    s{number} -.->|{text(label)}| k{number}")
    return lines


def run_edges(
    reactions: Sequence[Reaction], node_id: Callable[[str], str], text: Callable[[str], str]
) -> list[str]:
    """In a choreography's flowchart: each saga a reaction runs, linked from its event."""
    lines = []
    for reaction in reactions:
        for saga in reaction.runs:
            node = f"saga_{node_id(saga)}"
            lines.append(f'    {node}[["orchestrated saga {text(saga)}"]]')
            label = text(f"{reaction.participant}.{reaction.method} runs")
            lines.append(f"    {node_id(reaction.event)} -.->|{label}| {node}")
    return lines
