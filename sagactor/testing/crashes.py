"""Crash helpers: count how often a workload passes each crash point, die at any one pass,
and recover, the way sagactor's own crash sweep does.

    journal = MemoryJournal()              # or a SQLite path: whatever outlives the runtime
    def open_runtime() -> Runtime:
        return Runtime(journal, participants=make_participants(), sagas=[my_saga])

    for case in crash_cases(fresh_runtime, workload):
        ...                                # with fresh storage per case:
        acknowledged, rt = crash_and_recover(open_runtime, workload, case)
        with rt:
            check(rt, acknowledged)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from ..crashpoints import CrashPoint
from ..runtime import Runtime

__all__ = ["CrashCase", "crash_and_recover", "crash_cases"]

T = TypeVar("T")

ORCHESTRATION_POINTS = (CrashPoint.AFTER_COMMIT, CrashPoint.BEFORE_REPLY)


@dataclass(frozen=True, slots=True)
class CrashCase:
    """Die at the ``hit``-th pass through ``point``."""

    point: CrashPoint
    hit: int


def crash_cases(
    open_runtime: Callable[[], Runtime],
    workload: Callable[[Runtime], object],
    points: Iterable[CrashPoint] = ORCHESTRATION_POINTS,
    *,
    timeout: float = 10.0,
) -> list[CrashCase]:
    """Every (point, pass) the workload goes through, from one run without crashing.

    Raises ``AssertionError`` for a point the workload never passes: a sweep that skips a
    point silently would prove nothing about it.
    """
    with open_runtime() as rt:
        workload(rt)
        for saga_id in rt.saga_ids():  # count the passes of the whole run, not just its start
            rt.run(saga_id).result(timeout)
        hits = dict(rt.crash_plan.hits)
    cases = []
    for point in points:
        assert hits.get(point, 0) > 0, f"the workload never passes {point}"
        cases += [CrashCase(point, hit) for hit in range(1, hits[point] + 1)]
    return cases


def crash_and_recover(
    open_runtime: Callable[[], Runtime],
    workload: Callable[[Runtime], T],
    case: CrashCase,
    *,
    timeout: float = 10.0,
) -> tuple[T, Runtime]:
    """Run ``workload`` until the runtime dies at ``case``, then reopen and recover.

    Returns what the workload returned (typically the acknowledged saga ids; it should catch
    :class:`~sagactor.errors.RuntimeCrashed` from ``start``) and the recovered runtime, which
    the caller closes.
    """
    with open_runtime() as rt:
        rt.arm(case.point, case.hit)
        result = workload(rt)
        assert rt.wait_until_crashed(timeout), f"armed {case.point} pass {case.hit} never fired"
    return result, open_runtime()
