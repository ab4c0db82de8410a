"""Reports over many sagas: listings, stats, and ``sagactor inspect``'s summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...actors.faults import Fault
from ...messages import SagaStatus
from ...persistence.journal import Record
from ..journalview import SagaSummary
from .basics import clock, compact, duration, percentile, table

__all__ = [
    "STATUS_ORDER",
    "Batch",
    "faults_table",
    "inspect_report",
    "records_table",
    "sagas_table",
    "stats",
    "status_counts",
]

STATUS_ORDER = [s.value for s in SagaStatus]


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
