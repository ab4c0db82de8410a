"""Child sagas and hybrid flows in the text graphs: what a ``Child`` step runs, and the
child's own workflow drawn under its parent's (a choreography child as its events)."""

from __future__ import annotations

from collections.abc import Callable

from ...sagas.children import ChildSpec
from ...sagas.definition import Choreography, Saga, Step

__all__ = ["child_lines", "child_of", "handler_of"]


def child_of(step: Step) -> Saga | Choreography | str | None:
    """What a ``Child`` step runs (a definition, or a registered one's name); None for others."""
    spec = step.child
    return spec.saga if isinstance(spec, ChildSpec) else None


def handler_of(step: Step) -> str:
    """Who runs a step: ``participant.action``, a child saga, or a choreography's start."""
    child = child_of(step)
    if child is None:
        return f"{step.participant}.{step.action}"
    if isinstance(child, Choreography):
        return f"publish {child.start.__name__} -> {child.name}"
    return f"child saga {child if isinstance(child, str) else child.name}"


def child_lines(saga: Saga, draw: Callable[[Saga], str]) -> list[str]:
    """Under a saga's graph: each child step's own workflow (``draw`` draws a saga), indented."""
    lines: list[str] = []
    for number, step in enumerate(saga.steps, 1):
        child = child_of(step)
        if child is None:
            continue
        lines.append("")
        where = f"{number}. {step.name} (id <saga id>/{step.name})"
        if isinstance(child, Choreography):
            done = " | ".join(t.__name__ for t in child.completed)
            failed = " | ".join(t.__name__ for t in child.failed) or "-"
            lines.append(
                f"  {where} publishes {child.start.__name__} to the native choreography "
                f"{child.name!r} and waits: {done} is its result, {failed} fails the step "
                "(the choreography undid its own work)"
            )
        elif isinstance(child, str):
            lines.append(f"  {where} runs the registered saga {child!r} as its child")
        else:
            lines.append(
                f"  {where} runs the child saga {child.name!r}; held when done, it completes "
                "with this saga, or is undone by its own compensations:"
            )
            lines += ["    " + line if line else "" for line in draw(child).splitlines()]
    return lines
