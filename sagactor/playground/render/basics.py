"""Text basics: tables, durations, clock times, one-line and indented values, progress bars."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

import msgspec

__all__ = [
    "clock",
    "compact",
    "duration",
    "percentile",
    "pretty",
    "progress_bar",
    "table",
    "table_text",
]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: int = 2) -> str:
    return table_text(headers, rows, indent=indent)


def table_text(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: int = 2) -> str:
    """Left-aligned columns, numbers right-aligned, two spaces apart."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [
        bool(body) and all(_is_number(row[i]) for row in body if row[i] not in ("", "-"))
        for i in range(len(headers))
    ]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return (pad + "  ".join(parts)).rstrip()

    return "\n".join([line(list(headers)), *(line(row) for row in body)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def duration(seconds: float) -> str:
    """``0.42ms``, ``12.3ms``, ``1.23s``, ``2m03s``."""
    seconds = round(seconds, 9)  # timestamp differences: 0.000999999 is 1 ms
    if seconds < 0.001:
        return f"{seconds * 1000:.2f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def clock(ts: float) -> str:
    """Local wall-clock time with milliseconds: ``14:03:07.123``."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def _plain(value: Any) -> Any:
    """Builtins for display: Structs as dicts (no tag), Raw msgpack decoded, enums as values."""
    if isinstance(value, msgspec.Raw):
        try:
            return msgspec.msgpack.decode(value)
        except msgspec.DecodeError:
            return "<undecodable>"
    if isinstance(value, msgspec.Struct):
        return {f: _plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        return msgspec.to_builtins(value, str_keys=True)
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def compact(value: Any, limit: int = 72) -> str:
    """A one-line rendering of any value (Structs, Raw msgpack, containers), cut at ``limit``."""
    text = _flat(_plain(value)).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pretty(value: Any, *, max_items: int = 12) -> str:
    """An indented rendering of a (state) value; long containers are cut with a count."""
    lines: list[str] = []
    _pretty(_plain(value), 0, lines, max_items)
    return "\n".join(lines)


def _pretty(value: Any, depth: int, lines: list[str], max_items: int) -> None:
    pad = "  " * depth
    if isinstance(value, dict):
        if not value:
            lines.append(pad + "{}")
        for shown, (key, item) in enumerate(value.items()):
            if shown == max_items:
                lines.append(f"{pad}... {len(value) - max_items} more")
                break
            if isinstance(item, dict | list) and item and len(_flat(item)) > 60:
                lines.append(f"{pad}{key}: ({len(item)} entries)")
                _pretty(item, depth + 1, lines, max_items)
            else:
                lines.append(f"{pad}{key}: {compact(item, 100)}")
    elif isinstance(value, list):
        if not value:
            lines.append(pad + "[]")
        for shown, item in enumerate(value):
            if shown == max_items:
                lines.append(f"{pad}... {len(value) - max_items} more")
                break
            lines.append(f"{pad}- {compact(item, 100)}")
    else:
        lines.append(pad + compact(value, 100))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; ``nan`` for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def progress_bar(done: int, total: int, label: str, width: int = 30) -> str:
    """``started [########......] 400/1000 (40%)``."""
    fraction = done / total if total else 1.0
    filled = int(width * fraction)
    return f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({fraction:.0%})"
