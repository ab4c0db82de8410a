"""The playground's commands: parsing, running, help text and argument completion.

Each command is a function ``(shell, args)`` that prints through the shell and raises
:class:`~sagactor.playground.shell.CommandError` (one line, with a suggestion) on bad input.
"""

from __future__ import annotations

import code
import contextlib
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sagactor

from ..actors.faults import Fault
from ..crashpoints import CrashPoint
from ..messages import SagaStatus
from ..persistence.recovery import saga_stream
from ..runtime import Mode
from ..sagas.choreography import subscriptions
from ..sagas.definition import Saga
from ..sagas.native import Choreography, check
from . import mermaid, render
from .domain import Definition, InputError, build_input, input_fields
from .journalview import decode_record, last_records, mark_dispatched, summarize
from .shell import CommandError, Progress, Quit, suggest

if TYPE_CHECKING:
    from .shell import Shell

__all__ = ["COMMANDS", "Command", "command_names", "complete", "lookup"]

MODES: dict[str, Mode] = {
    "orchestration": "orchestration",
    "orch": "orchestration",
    "choreography": "choreography",
    "choreo": "choreography",
}
FAULT_KINDS = ("fail", "error", "delay")
FAULT_WORDS = ("once", "twice", "always", "undo", "times=", "p=", "seed=", "seconds=")
CRASH_POINTS: dict[str, str] = {
    CrashPoint.AFTER_COMMIT.value: "a journal batch is durable, but nobody has heard of it yet",
    CrashPoint.BEFORE_REPLY.value: "a participant committed a step's effect; its reply is not sent",
    CrashPoint.BEFORE_DISPATCH.value: (
        "a choreography participant committed its outbox; its events are not dispatched"
    ),
    CrashPoint.MID_RECOVERY.value: (
        "recovery resumed some in-flight sagas but not all (armed for the next `recover`)"
    ),
}
SAGA_FILTERS = (*(s.value for s in SagaStatus), "active", "all")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    summary: str
    details: str
    run: Callable[[Shell, list[str]], None]
    aliases: tuple[str, ...] = ()
    raw: bool = False
    """The rest of the line is one argument, as typed (no quoting rules, no comments)."""


class UsageError(CommandError):
    def __init__(self, command: str, problem: str) -> None:
        super().__init__(f"{command}: {problem} (usage: {COMMANDS[command].usage})")


def _number(command: str, word: str, what: str, *, minimum: float = 0) -> float:
    try:
        value = float(word.removesuffix("s"))
    except ValueError:
        raise UsageError(command, f"{what} must be a number, not {word!r}") from None
    if not value >= minimum:
        raise UsageError(command, f"{what} must be at least {minimum:g}, not {word!r}")
    return value


def _count(command: str, word: str, what: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise UsageError(command, f"{what} must be a whole number of at least 1, not {word!r}")
    return int(word)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _saga(shell: Shell, command: str, word: str | None) -> Definition:
    names = [s.name for s in shell.domain.sagas]
    if word is None:
        return shell.domain.sagas[0]
    found = shell.domain.saga(word)
    if found is None:
        raise UsageError(command, f"no saga definition {word!r}{suggest(word, names)}")
    return found


def _participant(shell: Shell, command: str, word: str) -> str:
    names = sorted(shell.participant_objects)
    if word not in shell.participant_objects:
        raise UsageError(command, f"no participant {word!r}{suggest(word, names)}")
    return word


def _handlers(shell: Shell, participant: str, *, undo: bool = False) -> list[str]:
    kind = type(shell.participant_objects[participant])
    return sorted(kind._compensations if undo else kind._actions)


# -- start ---------------------------------------------------------------------------------------


def cmd_start(shell: Shell, args: list[str]) -> None:
    n, saga_word = 1, None
    mode: Mode = "orchestration"
    fields: dict[str, str] = {}
    id_prefix: str | None = None
    wait, timeout = True, shell.timeout
    saga_names = [s.name for s in shell.domain.sagas]
    for arg in args:
        key, eq, value = arg.partition("=")
        if arg.isdigit():
            n = _count("start", arg, "N")
        elif eq and key == "id":
            if not value or "/" in value:
                raise UsageError("start", f"bad saga id {value!r}")
            id_prefix = value
        elif eq and key == "mode":
            if value not in MODES:
                raise UsageError("start", f"no mode {value!r}{suggest(value, MODES)}")
            mode = MODES[value]
        elif eq and key == "timeout":
            timeout = _number("start", value, "timeout")
        elif eq and key == "n":
            n = _count("start", value, "N")
        elif eq:
            fields[key] = value
        elif arg in MODES:
            mode = MODES[arg]
        elif arg in ("nowait", "&"):
            wait = False
        elif arg in saga_names:
            saga_word = arg
        else:
            choices = [*saga_names, *MODES, "nowait"]
            raise UsageError("start", f"unexpected {arg!r}{suggest(arg, choices)}")
    rt = shell.live()
    saga = _saga(shell, "start", saga_word)
    if id_prefix is not None:
        ids = [id_prefix] if n == 1 else [f"{id_prefix}-{k}" for k in range(1, n + 1)]
    else:
        ids = shell.next_ids(saga.name, n)
    defaults = shell.domain.defaults.get(saga.name, {})
    try:
        inputs = [
            build_input(saga, fields, defaults, saga_id=saga_id, index=k)
            for k, saga_id in enumerate(ids, 1)
        ]
    except InputError as error:
        raise UsageError("start", str(error)) from None
    started = time.monotonic()
    runs: list[sagactor.SagaRun] = []
    progress = Progress(shell, "started ", n)
    shell.remember(ids)
    try:
        for first in range(0, n, 500):
            chunk = slice(first, first + 500)
            runs += rt.start_many(saga, inputs[chunk], saga_ids=ids[chunk], mode=mode)
            progress.update(len(runs))
    except sagactor.RuntimeCrashed:
        progress.finish(len(runs))
        shell.crash_noticed = True
        shell.emit(
            f"! {shell.crash_message()} while starting ({len(runs)} of {n} accepted); "
            "type `recover` to reopen the journal"
        )
        return
    progress.finish(len(runs))
    what = f"{saga.name} saga" + ("s" if n > 1 else "")
    listed = runs[0].id if n == 1 else f"{runs[0].id} .. {runs[-1].id}"
    how = "native choreography" if isinstance(saga, Choreography) else mode
    shell.emit(f"started {n} {what} ({how}): {listed}")
    if not wait:
        return
    outcomes, pending, crashed = shell.await_runs(runs, timeout)
    seconds = time.monotonic() - started
    if n > 1:
        shell.batch = render.Batch(n, len(outcomes), seconds)
    shell.report(outcomes, pending, crashed, seconds)


# -- faults --------------------------------------------------------------------------------------


def cmd_fault(shell: Shell, args: list[str]) -> None:
    if not args:
        raise UsageError("fault", "name a participant")
    rt = shell.live()
    participant = _participant(shell, "fault", args[0])
    kind: str | None = None
    action: str | None = None
    undo = False
    times: int | None = None
    probability, seed, seconds = 1.0, None, 1.0
    candidates = set(_handlers(shell, participant)) | set(_handlers(shell, participant, undo=True))
    for arg in args[1:]:
        key, eq, value = arg.partition("=")
        if arg in FAULT_KINDS:
            kind = arg
        elif arg in ("undo", "compensation", "comp"):
            undo = True
        elif arg == "once":
            times = 1
        elif arg == "twice":
            times = 2
        elif arg == "always":
            times = None
        elif eq and key == "times":
            times = _count("fault", value, "times")
        elif eq and key in ("p", "probability"):
            probability = _number("fault", value, "p")
            if probability > 1:
                raise UsageError("fault", f"p must be within 0..1, not {value}")
        elif eq and key == "seed":
            seed = int(_number("fault", value, "seed"))
        elif eq and key == "seconds":
            seconds = _number("fault", value, "seconds")
        elif kind == "delay" and _is_seconds(arg):
            seconds = _number("fault", arg, "seconds")
        elif arg in candidates and action is None:
            action = arg
        else:
            choices = [*FAULT_KINDS, *candidates, *(w.rstrip("=") for w in FAULT_WORDS)]
            raise UsageError("fault", f"unexpected {arg!r}{suggest(arg, choices)}")
    if kind is None:
        raise UsageError("fault", "say which fault: fail, error or delay")
    handlers = _handlers(shell, participant, undo=undo)
    if action is None:
        if len(handlers) != 1:
            listing = ", ".join(handlers) or "none"
            raise UsageError("fault", f"{participant} has several actions ({listing}): name one")
        action = handlers[0]
    if action not in handlers:
        what = "compensation" if undo else "action"
        raise UsageError(
            "fault",
            f"{participant} has no {what} {action!r} ({what}s: {', '.join(handlers) or 'none'})",
        )
    fault = Fault(
        kind,  # type: ignore[arg-type]  # checked against FAULT_KINDS above
        times=times,
        probability=probability,
        seed=seed,
        seconds=seconds if kind == "delay" else 0.0,
    )
    rt.inject(participant, action, fault, compensation=undo)
    target = f"{participant}.{action}" + (" (its compensation)" if undo else "")
    note = ""
    if undo and kind == "fail":
        note = "; a compensation cannot fail for business reasons, so this is an error, retried"
    shell.emit(f"fault on {target}: {fault.describe()}{note}")


def _is_seconds(word: str) -> bool:
    try:
        float(word.removesuffix("s"))
    except ValueError:
        return False
    return True


def cmd_faults(shell: Shell, args: list[str]) -> None:
    if args:
        raise UsageError("faults", "takes no arguments")
    rt = shell.rt
    if rt is None:
        raise CommandError("no runtime is open; type `recover`")
    shell.emit(render.faults_table(rt.faults))


def cmd_clear(shell: Shell, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("clear", "takes at most one participant")
    rt = shell.live()
    participant = _participant(shell, "clear", args[0]) if args else None
    before = len(rt.faults)
    rt.clear_faults(participant)
    where = f" on {participant}" if participant else ""
    shell.emit(f"cleared {before - len(rt.faults)} fault(s){where}")


# -- crash and recovery ----------------------------------------------------------------------


def cmd_crash(shell: Shell, args: list[str]) -> None:
    rt = shell.live()
    if not args or args == ["now"]:
        in_flight = [s.removeprefix("saga/") for s in rt.journal.open_streams("saga/")]
        shell.crash_text = "killed on request, as kill -9 would"
        shell.crash_noticed = True
        rt.crash()
        rt.wait_until_crashed(5)
        shown = ", ".join(in_flight[:10]) + (" ..." if len(in_flight) > 10 else "")
        shell.emit(
            f"crashed (as kill -9 would: queued journal writes are lost); "
            f"{len(in_flight)} saga(s) were in flight{': ' + shown if in_flight else ''}; "
            "type `recover` to reopen the journal"
        )
        return
    if args == ["off"]:
        rt.crash_plan.disarm()
        shell.mid_recovery = None
        shell.armed.clear()
        shell.emit("crash points disarmed")
        return
    if args[0] != "at" or len(args) not in (2, 3):
        raise UsageError("crash", f"unexpected {' '.join(args)!r}")
    point = args[1]
    if point not in CRASH_POINTS:
        raise UsageError(
            "crash",
            f"no crash point {point!r}{suggest(point, CRASH_POINTS)}; "
            f"points: {', '.join(CRASH_POINTS)}",
        )
    hit = _count("crash", args[2], "HIT") if len(args) == 3 else 1
    if point == CrashPoint.MID_RECOVERY:
        shell.mid_recovery = hit
        shell.emit(
            f"armed: the next `recover` dies after resuming {hit} in-flight saga(s) "
            f"({CRASH_POINTS[point]})"
        )
        return
    rt.arm(point, hit)
    shell.armed.append(point)
    shell.crash_noticed = False
    shell.emit(f"armed: the runtime dies at the {_ordinal(hit)} pass through {point} from now")
    shell.emit(f"  ({CRASH_POINTS[point]})")


def cmd_recover(shell: Shell, args: list[str]) -> None:
    if args:
        raise UsageError("recover", "takes no arguments")
    old = shell.rt
    if old is not None and not old.crashed:
        shell.emit("stopping the running runtime first (a clean close)")
    lost = len(old.faults) if old is not None else 0
    started = time.monotonic()
    try:
        rt, resumed = shell.reopen()
    except sagactor.RuntimeCrashed:
        shell.crash_noticed = True
        shell.emit(f"! {shell.crash_message()} during recovery; `recover` again to resume")
        return
    where = "memory" if shell.path == ":memory:" else shell.path
    shown = ", ".join(resumed[:10]) + (" ..." if len(resumed) > 10 else "")
    shell.emit(
        f"reopened the journal ({where}): participants rebuilt their state; "
        f"resumed {len(resumed)} in-flight saga(s){': ' + shown if resumed else ''}"
    )
    if lost:
        shell.emit(f"({lost} injected fault(s) died with the old runtime)")
    if resumed:
        runs = [rt.run(saga_id) for saga_id in resumed]
        outcomes, pending, crashed = shell.await_runs(runs, shell.timeout)
        shell.report(outcomes, pending, crashed, time.monotonic() - started)


def cmd_wait(shell: Shell, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("wait", "takes at most a number of seconds")
    timeout = _number("wait", args[0], "SECONDS") if args else 30.0
    rt = shell.live()
    ids = [s.removeprefix("saga/") for s in rt.journal.open_streams("saga/")]
    if not ids:
        shell.emit("nothing in flight")
        return
    started = time.monotonic()
    shell.emit(f"waiting for {len(ids)} saga(s) in flight")
    outcomes, pending, crashed = shell.await_runs([rt.run(i) for i in ids], timeout)
    shell.report(outcomes, pending, crashed, time.monotonic() - started)


def cmd_resume(shell: Shell, args: list[str]) -> None:
    if len(args) != 1:
        raise UsageError("resume", "name one stuck saga")
    rt = shell.live()
    saga_id = shell.resolve_id(args[0])
    status = rt.status(saga_id).status
    if status is not SagaStatus.STUCK:
        raise CommandError(f"{saga_id} is {status.value}, not stuck: nothing to resume")
    rt.resume(saga_id)
    shell.emit(f"resuming {saga_id}: its failed compensation is tried again")
    started = time.monotonic()
    outcomes, pending, crashed = shell.await_runs([rt.run(saga_id)], shell.timeout)
    shell.report(outcomes, pending, crashed, time.monotonic() - started)


def cmd_cancel(shell: Shell, args: list[str]) -> None:
    if not args:
        raise UsageError("cancel", "name a running saga")
    rt = shell.live()
    saga_id = shell.resolve_id(args[0])
    status = rt.status(saga_id).status
    if status is not SagaStatus.RUNNING:
        raise CommandError(f"{saga_id} is {status.value}: only a running saga can be cancelled")
    rt.cancel(saga_id, " ".join(args[1:]) or "cancelled in the playground")
    started = time.monotonic()
    outcomes, pending, crashed = shell.await_runs([rt.run(saga_id)], shell.timeout)
    shell.report(outcomes, pending, crashed, time.monotonic() - started)


# -- looking inside ------------------------------------------------------------------------------


def cmd_sagas(shell: Shell, args: list[str]) -> None:
    status: str | None = None
    limit: int | None = 20
    for arg in args:
        if arg.isdigit():
            limit = _count("sagas", arg, "N")
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


def _history(shell: Shell, word: str) -> tuple[str, list[sagactor.HistoryEntry], Saga | None]:
    """A saga's history, its dispatched events marked, and its step-list definition if any."""
    rt = shell.live()
    saga_id = shell.resolve_id(word)
    entries = rt.history(saga_id)
    positions = {r.position for r in rt.journal.read(saga_stream(saga_id))}
    entries = mark_dispatched(entries, positions)
    started = entries[0].event if entries else None
    name = getattr(started, "saga", None)
    definition = rt.definitions.get(name) if isinstance(name, str) else None
    return saga_id, entries, definition if isinstance(definition, Saga) else None


def _reactions(shell: Shell, choreography: Choreography) -> list[render.Reaction]:
    """The ``@on`` subscriptions reachable from the choreography's start event."""
    every = [
        render.Reaction(
            kind.__name__, p.participant_name, spec.method, tuple(e.__name__ for e in spec.emits)
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


def cmd_show(shell: Shell, args: list[str]) -> None:
    if len(args) != 1:
        raise UsageError("show", "name one saga id")
    saga_id, entries, definition = _history(shell, args[0])
    shell.emit(render.timeline(saga_id, entries, definition, shell.marks))


def cmd_state(shell: Shell, args: list[str]) -> None:
    if len(args) != 1:
        raise UsageError("state", "name one participant")
    rt = shell.live()
    participant = _participant(shell, "state", args[0])
    shell.emit(f"{participant}:")
    shell.emit(render.pretty(rt.state(participant)).replace("\n", "\n  ").join(["  ", ""]))


def cmd_tail(shell: Shell, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("tail", "takes at most a number of records")
    n = _count("tail", args[0], "N") if args else 20
    rt = shell.live()
    records = last_records(rt.journal, n)
    if not records:
        shell.emit("the journal is empty")
        return
    shell.emit(render.records_table(records, [decode_record(r) for r in records]))


def cmd_graph(shell: Shell, args: list[str]) -> None:
    words = [a for a in args if a not in MODES]
    modes = {MODES[a] for a in args if a in MODES}
    if len(words) > 1 or len(modes) > 1:
        raise UsageError("graph", "name one saga definition, and at most one mode")
    saga = _saga(shell, "graph", words[0] if words else None)
    if isinstance(saga, Choreography):
        problems = check(saga, shell.participant_objects.values())
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


def cmd_mermaid(shell: Shell, args: list[str]) -> None:
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


def cmd_stats(shell: Shell, args: list[str]) -> None:
    if args:
        raise UsageError("stats", "takes no arguments")
    rt = shell.live()
    shell.emit(render.stats(summarize(rt.journal), shell.batch))
    if rt.faults:
        shell.emit(f"faults injected: {len(rt.faults)} (`faults` lists them)")


# -- the rest ------------------------------------------------------------------------------------


class _LeaveConsole:
    """``exit()`` for the console: the builtin one closes stdin, which the REPL still needs."""

    def __repr__(self) -> str:
        return "Use exit() or Ctrl-D to return to the playground"

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)


def cmd_py(shell: Shell, args: list[str]) -> None:
    namespace = shell.py_namespace
    namespace.update(
        exit=_LeaveConsole(),
        quit=_LeaveConsole(),
        rt=shell.rt,
        shell=shell,
        sagactor=sagactor,
        Fault=Fault,
        CrashPoint=CrashPoint,
        sagas={s.name: s for s in shell.domain.sagas},
    )
    for saga in shell.domain.sagas:
        if saga.name.isidentifier():
            namespace.setdefault(saga.name, saga)
    if not args:
        if not shell.interactive:
            raise UsageError("py", "in a script, give the Python to run on the same line")
        # exit() in the console leaves the console, not the playground.
        with contextlib.suppress(SystemExit):
            code.interact(
                banner="Python with the playground in scope: rt (the runtime), shell, sagactor, "
                "Fault, CrashPoint, sagas. Ctrl-D (or exit()) returns to the playground.",
                local=namespace,
                exitmsg="",
            )
        shell.emit("back in the playground")
        return
    source = args[0]
    try:
        try:
            compiled = compile(source, "<py>", "eval")
        except SyntaxError:
            exec(compile(source, "<py>", "exec"), namespace)
        else:
            value = eval(compiled, namespace)
            if value is not None:
                shell.emit(repr(value))
    except SystemExit:
        raise CommandError("py: exit() does not leave the playground; `quit` does") from None
    except Exception as error:  # noqa: BLE001 - user code
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        raise CommandError(f"py: {last}") from None


def cmd_sleep(shell: Shell, args: list[str]) -> None:
    if len(args) != 1:
        raise UsageError("sleep", "give a number of seconds")
    time.sleep(_number("sleep", args[0], "SECONDS"))


def cmd_help(shell: Shell, args: list[str]) -> None:
    if not args:
        rows = [[c.name, c.summary] for c in COMMANDS.values()]
        shell.emit("commands (`help COMMAND` for its usage, details and examples):")
        shell.emit(render.table(["command", "what it does"], rows))
        return
    command = lookup(args[0])
    if command is None:
        raise UsageError("help", f"no command {args[0]!r}{suggest(args[0], command_names())}")
    shell.emit(f"usage: {command.usage}")
    shell.emit(f"  {command.summary}")
    if command.aliases:
        shell.emit(f"  also: {', '.join(command.aliases)}")
    for line in command.details.strip("\n").splitlines():
        shell.emit(f"  {line}" if line else "")


def cmd_quit(shell: Shell, args: list[str]) -> None:
    raise Quit


# -- the table -----------------------------------------------------------------------------------

_CRASH_HELP = "\n".join(f"  {name:<16} {what}" for name, what in CRASH_POINTS.items())

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command(
            "start",
            "start [N] [SAGA] [orchestration|choreography] [FIELD=VALUE ...] [id=ID] [nowait]",
            "start N sagas (default 1) and wait for their outcomes",
            """
SAGA defaults to the first definition; the mode to orchestration (orch and choreo work too).
FIELD=VALUE sets an input field over the domain's defaults; {i} in a value is the saga's
number in the batch (customer=c{i}). Ids are SAGA-1, SAGA-2...; id=X names the saga X (or
X-1..X-N for many). Waits up to timeout=SECONDS (default 10) unless nowait; many sagas show
progress and a throughput line.
examples:  start    start 1000    start choreography qty=3    start id=big amount=999999
""",
            cmd_start,
        ),
        Command(
            "fault",
            "fault PARTICIPANT [ACTION] fail|error|delay [SECONDS] [once|twice|times=N] "
            "[p=P seed=S] [undo]",
            "make a participant's action (or with undo, its compensation) misbehave",
            """
fail: a business failure (the saga compensates); error: a technical error (the step's retry
policy applies); delay: the message arrives SECONDS late (default 1). Always, unless once,
twice or times=N; with p=P (0..1) it fires at random, reproducibly with seed=S. ACTION may be
left out when the participant has one action. A new fault replaces the one on that handler.
examples:  fault payment fail once    fault shipping create error times=2
           fault inventory delay 0.5    fault payment error p=0.3 seed=7
           fault inventory error undo
""",
            cmd_fault,
        ),
        Command("faults", "faults", "list the injected faults", "", cmd_faults),
        Command(
            "clear",
            "clear [PARTICIPANT]",
            "remove injected faults (all, or one participant's)",
            "",
            cmd_clear,
        ),
        Command(
            "crash",
            "crash [now] | crash at POINT [HIT] | crash off",
            "kill the runtime now, or arm a crash at a named point",
            f"""
crash (or crash now) dies at once, as kill -9 would. crash at POINT HIT dies at the HIT-th
(default 1st) pass through POINT from now; crash off disarms. Then `recover`. Points:
{_CRASH_HELP}
""",
            cmd_crash,
        ),
        Command(
            "recover",
            "recover",
            "reopen the journal (a new runtime) and resume the in-flight sagas",
            """
Closes the runtime (crashed or not), opens the same journal with fresh participants, whose
state is rebuilt from it, resumes every saga without a final event and waits for them.
Injected faults die with the old runtime.
""",
            cmd_recover,
        ),
        Command(
            "sagas",
            "sagas [STATUS|active] [N|all]",
            "list sagas (the last 20 by default), with counts by status",
            f"STATUS is one of {', '.join(s.value for s in SagaStatus)}; "
            "active means running or compensating.",
            cmd_sagas,
            ("ls",),
        ),
        Command(
            "show",
            "show ID",
            "one saga's timeline: steps, attempts, compensations, timings, across participants",
            "ID may be the full id, its number (3 for order-3) or a unique prefix.",
            cmd_show,
        ),
        Command("state", "state PARTICIPANT", "a participant's current state", "", cmd_state),
        Command(
            "tail",
            "tail [N]",
            "the journal's last N records (default 20)",
            "Every record of every stream, in commit order: saga events and participant changes.",
            cmd_tail,
        ),
        Command(
            "graph",
            "graph [SAGA] [choreography]",
            "draw a saga definition's workflow as text",
            "Steps run down the left; when one fails, the compensations run up the right.\n"
            "With choreography: the events each participant reacts to, derived from the steps.",
            cmd_graph,
        ),
        Command(
            "mermaid",
            "mermaid ID|SAGA [FILE]",
            "Mermaid: a sequence diagram of one saga run, or a flowchart of a definition",
            "With FILE, the diagram is written there instead of printed.",
            cmd_mermaid,
        ),
        Command(
            "stats",
            "stats",
            "counts by status, latency percentiles, throughput, step durations",
            "",
            cmd_stats,
        ),
        Command(
            "wait",
            "wait [SECONDS]",
            "wait (default up to 30 s) for the in-flight sagas to finish",
            "",
            cmd_wait,
        ),
        Command(
            "resume",
            "resume ID",
            "retry a stuck saga's failed compensation (clear its fault first)",
            "",
            cmd_resume,
        ),
        Command(
            "cancel",
            "cancel ID [REASON]",
            "cancel a running saga: what it did is compensated",
            "",
            cmd_cancel,
        ),
        Command(
            "py",
            "py [CODE]",
            "Python with the runtime in scope (rt, shell, sagactor, Fault, sagas)",
            """
Without CODE (interactive only), opens a Python console; Ctrl-D comes back. With CODE, runs
that one line and prints an expression's value, e.g.  py rt.state("payment").balances
""",
            cmd_py,
            raw=True,
        ),
        Command("sleep", "sleep SECONDS", "pause (in scripts)", "", cmd_sleep),
        Command("help", "help [COMMAND]", "this list, or one command's details", "", cmd_help),
        Command("quit", "quit", "leave (Ctrl-D works too)", "", cmd_quit, ("exit", "q")),
    ]
}


def command_names() -> list[str]:
    return list(COMMANDS)


def lookup(name: str) -> Command | None:
    command = COMMANDS.get(name)
    if command is not None:
        return command
    return next((c for c in COMMANDS.values() if name in c.aliases), None)


# -- completion ----------------------------------------------------------------------------------


def complete(shell: Shell, command: str, before: Sequence[str], current: str) -> list[str]:
    """Candidates for the word being typed after ``command`` and the words ``before`` it."""
    saga_names = [s.name for s in shell.domain.sagas]
    participants = sorted(shell.participant_objects)
    if command == "start":
        saga = shell.domain.saga(next((w for w in before if w in saga_names), saga_names[0]))
        fields = [f"{f}=" for f in input_fields(saga)] if saga is not None else []
        return [*saga_names, *MODES, *fields, "id=", "timeout=", "nowait"]
    if command == "fault":
        if not before:
            return participants
        if before[0] not in shell.participant_objects:
            return []
        handlers = _handlers(shell, before[0]) + _handlers(shell, before[0], undo=True)
        return [*dict.fromkeys(handlers), *FAULT_KINDS, *FAULT_WORDS]
    if command in ("clear", "state"):
        return participants if not before else []
    if command == "crash":
        if not before:
            return ["now", "at", "off"]
        return list(CRASH_POINTS) if before == ["at"] else []
    if command == "sagas":
        return list(SAGA_FILTERS)
    if command in ("show", "resume", "cancel"):
        return shell.recent_ids() if not before else []
    if command == "mermaid":
        return [*saga_names, *shell.recent_ids()] if not before else []
    if command == "graph":
        return [*saga_names, "choreography"]
    if command == "help":
        return command_names() if not before else []
    return []
