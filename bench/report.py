"""The bench's table: each figure beside its same-run baseline, the ratio, the target, MEET/MISS.

A target is either on the ratio (``ratio >= 60``) or on the figure itself (``p50 <= 1.5 ms``).
A row whose baseline could not run (DBOS not installed) or whose size is not the target's (a
``--quick`` recovery of 1,000 sagas) says ``n/a`` rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Row", "Target", "counts_table", "table"]

Verdict = Literal["MEET", "MISS", "n/a", ""]


@dataclass(frozen=True, slots=True)
class Target:
    on: Literal["ratio", "figure"]
    at_least: bool  # True: figure/ratio >= bound; False: <= bound
    bound: float
    applies: bool = True  # False when the run's size is not the target's (--quick)

    def text(self, unit: str) -> str:
        sign = ">=" if self.at_least else "<="
        if self.on == "ratio":
            return f"{sign} {_number(self.bound)}x"
        return f"{sign} {_number(self.bound)} {unit}"


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    figure: float | None
    unit: str
    baseline: str = ""
    baseline_figure: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.baseline_figure:
            return None
        return self.figure / self.baseline_figure

    @property
    def verdict(self) -> Verdict:
        if self.target is None:
            return ""
        value = self.ratio if self.target.on == "ratio" else self.figure
        if value is None or not self.target.applies:
            return "n/a"
        met = value >= self.target.bound if self.target.at_least else value <= self.target.bound
        return "MEET" if met else "MISS"

    def to_builtins(self) -> dict[str, Any]:
        found = asdict(self)
        found.update(ratio=self.ratio, verdict=self.verdict)
        found["target"] = self.target.text(self.unit) if self.target else None
        return found


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cells(row: Row) -> list[str]:
    figure = "-" if row.figure is None else f"{_number(row.figure)} {row.unit}"
    if row.baseline:
        value = "-" if row.baseline_figure is None else _number(row.baseline_figure)
        baseline = f"{row.baseline} {value}"
    else:
        baseline = ""
    ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
    target = row.target.text(row.unit) if row.target else ""
    label = f"{row.label} ({row.note})" if row.note else row.label
    return [label, figure, baseline, ratio, target, row.verdict]


def _markdown(header: Sequence[str], lines: Iterable[Sequence[str]], right: set[int]) -> str:
    body = [list(header), *(list(line) for line in lines)]
    widths = [max(len(line[i]) for line in body) for i in range(len(header))]

    def fmt(line: Sequence[str]) -> str:
        cells = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        return "| " + " | ".join(cells) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([fmt(body[0]), rule, *(fmt(line) for line in body[1:])])


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (readable as plain text too)."""
    header = ["figure", "sagactor", "same-run baseline", "ratio", "target", ""]
    return _markdown(header, (_cells(row) for row in rows), right={1, 2, 3})


def counts_table(counts: Sequence[dict[str, Any]]) -> str:
    """Per-saga counts, one line per (journal, in flight)."""
    header = ["journal", "in flight", "messages", "appends", "waits", "rows", "commits", "fsyncs"]

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")

    lines = [
        [
            "SQLite FULL" if c["durable"] else "in memory",
            str(c["in_flight"]),
            *(cell(c.get(key)) for key in header[2:]),
        ]
        for c in counts
    ]
    return _markdown(header, lines, right={1, 2, 3, 4, 5, 6, 7})
