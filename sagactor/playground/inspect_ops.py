"""``sagactor inspect DB list|show|resolve|restart|prune``: operating a journal from the shell,
with ``--json`` for scripts. Reads need no participant; ``resolve`` and ``restart`` need the
sagas' definitions (``--module``), and the runtime that next opens the journal carries the saga
on (a restart's fork: recovery runs it)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import msgspec

from ..codec import decode_event
from ..errors import SagactorError
from ..forks import fork_offline
from ..messages import SagaQueued
from ..operations import STATUSES, resolve_offline
from ..persistence.journal import Journal
from ..persistence.summaries import SagaQuery, SagaRow, parse_cursor
from ..retention import prune_journal
from .domain import DomainError, load_domain

__all__ = ["add_actions", "run_action"]

_decode = decode_event


def add_actions(inspect: argparse.ArgumentParser) -> None:
    """The actions of ``sagactor inspect DB``, after the journal's name."""
    inspect.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    # Also after the action; SUPPRESS keeps an earlier --json from being reset by its default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    actions = inspect.add_subparsers(dest="action", metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help, parents=[common])

    listing = action("list", "sagas, newest first (from the sagas table)")
    listing.add_argument("--status", action="append", choices=STATUSES, help="repeatable")
    listing.add_argument("--saga", help="only sagas of this definition")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--after", metavar="CURSOR", help="the cursor a page ended with")
    show = action("show", "one saga: its summary and its events")
    show.add_argument("id")
    resolve = action("resolve", "settle a stuck saga's failing compensation")
    resolve.add_argument("id")
    resolve.add_argument("step")
    resolve.add_argument("--how", choices=("compensated", "skipped"), default="compensated")
    resolve.add_argument("--note", default="")
    resolve.add_argument("--by", default="operator")
    resolve.add_argument("--module", "-m", metavar="MODULE", help="where the sagas are defined")
    restart = action("restart", "fork an ended saga (from its first step or --from-step)")
    restart.add_argument("id")
    restart.add_argument("--from-step", metavar="STEP", help="begin at STEP, carrying the rest")
    restart.add_argument("--module", "-m", metavar="MODULE", help="where the sagas are defined")
    prune = action("prune", "delete the events of ended sagas")
    prune.add_argument("--older-than", type=float, default=0.0, metavar="DAYS")
    prune.add_argument("--keep", type=int, default=0, help="spare the N that ended last")
    prune.add_argument("--drop-summaries", action="store_true", help="delete their rows too")


def run_action(journal: Journal, options: argparse.Namespace) -> int:
    """Run the chosen action on the open ``journal``; the exit status."""
    try:
        return _ACTIONS[options.action](journal, options)
    except (SagactorError, DomainError, ValueError) as error:
        print(f"sagactor: {error}", file=sys.stderr)
        return 1


def _list(journal: Journal, options: argparse.Namespace) -> int:
    query = SagaQuery(
        statuses=tuple(s for s in options.status or () if s != "quarantined"),
        saga=options.saga,
        limit=options.limit,
        after=None if options.after is None else parse_cursor(options.after),
    )
    rows = journal.sagas(query)
    cursor = rows[-1].cursor if len(rows) == options.limit else None
    if options.json:
        _print_json({"rows": rows, "cursor": cursor})
        return 0
    for row in rows:
        print(_line(row))
    if cursor:
        print(f"more: --after {cursor}")
    return 0


def _show(journal: Journal, options: argparse.Namespace) -> int:
    row = journal.saga_row(options.id)
    if row is None:
        print(f"sagactor: no saga with id {options.id!r}", file=sys.stderr)
        return 1
    records = journal.read(f"saga/{options.id}")
    events: list[dict[str, Any]] = []
    for record in records:
        event = msgspec.to_builtins(_decode(record.data), enc_hook=_raw)
        event.pop("input", None)  # the row carries it as JSON
        events.append({"seq": record.seq, "type": record.type, "ts": record.ts, **event})
    place = _queue_position(journal, row) if row.status == "queued" else None
    if options.json:
        position = None if place is None else {"position": place[0], "of": place[1]}
        _print_json({"saga": row, "events": events, "queue": position})
        return 0
    print(_line(row))
    if place is not None:
        print(f"  queued: position {place[0]} of {place[1]} for a slot of {row.type!r}")
    print(f"  input: {row.input}")
    if row.result is not None:
        print(f"  result: {row.result}")
    if row.events == 0:
        print("  (its events were pruned)")
    for event in events:
        at = _time(event.pop("ts"))
        seq, kind = event.pop("seq"), event.pop("type")
        detail = " ".join(f"{k}={v!r}" for k, v in event.items() if k not in ("type", "data"))
        print(f"  {seq:>4} {at} {kind} {detail}".rstrip())
    return 0


def _queue_position(journal: Journal, row: SagaRow) -> tuple[int, int] | None:
    """Where a queued saga stands among the queued sagas of its type, as the journal says:
    (its place, 1 = next; how many wait). The runtime admits in the same order: higher
    priority first, then the ticket each ``SagaQueued`` journaled."""
    rows = journal.sagas(SagaQuery(statuses=("queued",), saga=row.type, limit=10**9))
    keys: dict[str, tuple[int, int]] = {}
    for other in rows:
        for record in journal.read(f"saga/{other.id}"):
            event = _decode(record.data)
            if isinstance(event, SagaQueued):
                keys[other.id] = (-event.priority, event.ticket)
    if row.id not in keys:
        return None
    return sorted(keys.values()).index(keys[row.id]) + 1, len(keys)


def _resolve(journal: Journal, options: argparse.Namespace) -> int:
    domain = load_domain(options.module)
    definitions = {saga.name: saga for saga in domain.sagas}
    written = resolve_offline(
        journal, definitions, options.id, options.step, options.how, options.note, options.by
    )
    if options.json:
        _print_json({"saga": options.id, "written": written})
    else:
        print(f"saga {options.id}: {', '.join(written)} (a runtime opening the journal goes on)")
    return 0


def _restart(journal: Journal, options: argparse.Namespace) -> int:
    domain = load_domain(options.module)
    definitions = {saga.name: saga for saga in domain.sagas}
    fork, written = fork_offline(journal, definitions, options.id, options.from_step)
    if options.json:
        _print_json({"saga": options.id, "fork": fork, "written": written})
    else:
        print(f"saga {options.id}: forked as {fork} (a runtime opening the journal runs it)")
    return 0


def _prune(journal: Journal, options: argparse.Namespace) -> int:
    before = dt.datetime.now().timestamp() - options.older_than * 86400

    def progress(sagas: int, records: int) -> None:  # on stderr: stdout stays the result
        print(f"  pruned {sagas} saga(s), {records} record(s) so far", file=sys.stderr)

    report = prune_journal(journal, before, options.keep, not options.drop_summaries, progress)
    if options.json:
        _print_json(report)
    else:
        print(
            f"pruned {report.sagas} saga(s), {report.records} record(s); "
            f"{report.reclaimed} bytes reclaimed"
        )
    return 0


def _raw(value: Any) -> Any:
    if isinstance(value, msgspec.Raw):  # a step's result, an event's data: msgpack inside
        return msgspec.msgpack.decode(value)
    raise NotImplementedError(type(value))


def _line(row: SagaRow) -> str:
    reason = f"  {row.reason}" if row.reason else ""
    started = _time(row.started)
    return f"{row.id}  {row.type} v{row.version}  {row.status}  {row.step}  {started}{reason}"


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="milliseconds")


def _print_json(value: Any) -> None:
    print(msgspec.json.encode(value).decode())


_ACTIONS = {
    "list": _list,
    "show": _show,
    "resolve": _resolve,
    "restart": _restart,
    "prune": _prune,
}
