"""``crash`` and ``recover``: kill the runtime (now or at a named point), reopen the journal."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ...crashpoints import CrashPoint
from ...errors import RuntimeCrashed
from ...names import SAGA_PREFIX, saga_id_of
from ..session import Session, suggest
from .args import count
from .registry import UsageError, command

__all__ = ["CRASH_POINTS", "cmd_crash", "cmd_recover"]

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
_CRASH_HELP = "\n".join(f"  {name:<16} {what}" for name, what in CRASH_POINTS.items())


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _complete_crash(shell: Session, before: Sequence[str]) -> list[str]:
    if not before:
        return ["now", "at", "off"]
    return list(CRASH_POINTS) if before == ["at"] else []


@command(
    "crash",
    usage="crash [now] | crash at POINT [HIT] | crash off",
    summary="kill the runtime now, or arm a crash at a named point",
    details=f"""
crash (or crash now) dies at once, as kill -9 would. crash at POINT HIT dies at the HIT-th
(default 1st) pass through POINT from now; crash off disarms. Then `recover`. Points:
{_CRASH_HELP}
""",
    complete=_complete_crash,
)
def cmd_crash(shell: Session, args: list[str]) -> None:
    rt = shell.live()
    if not args or args == ["now"]:
        in_flight = [saga_id_of(s) or s for s in rt.journal.open_streams(SAGA_PREFIX)]
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
    hit = count("crash", args[2], "HIT") if len(args) == 3 else 1
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


@command(
    "recover",
    usage="recover",
    summary="reopen the journal (a new runtime) and resume the in-flight sagas",
    details="""
Closes the runtime (crashed or not), opens the same journal with fresh participants, whose
state is rebuilt from it, resumes every saga without a final event and waits for them.
Injected faults die with the old runtime.
""",
)
def cmd_recover(shell: Session, args: list[str]) -> None:
    if args:
        raise UsageError("recover", "takes no arguments")
    old = shell.rt
    if old is not None and not old.crashed:
        shell.emit("stopping the running runtime first (a clean close)")
    lost = len(old.faults) if old is not None else 0
    started = time.monotonic()
    try:
        rt, resumed = shell.reopen()
    except RuntimeCrashed:
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
