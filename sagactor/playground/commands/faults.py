"""``fault``, ``faults``, ``clear``: make participants misbehave, list and remove faults."""

from __future__ import annotations

from collections.abc import Sequence

from ...actors.faults import Fault
from ..render import faults_table
from ..session import CommandError, Session, suggest
from .args import complete_participant, count, find_participant, handlers, number
from .registry import UsageError, command

__all__ = ["FAULT_KINDS", "cmd_clear", "cmd_fault", "cmd_faults"]

FAULT_KINDS = ("fail", "error", "delay")
FAULT_WORDS = ("once", "twice", "always", "undo", "times=", "p=", "seed=", "seconds=")


def _complete_fault(shell: Session, before: Sequence[str]) -> list[str]:
    if not before:
        return sorted(shell.participant_objects)
    if before[0] not in shell.participant_objects:
        return []
    names = handlers(shell, before[0]) + handlers(shell, before[0], undo=True)
    return [*dict.fromkeys(names), *FAULT_KINDS, *FAULT_WORDS]


@command(
    "fault",
    usage="fault PARTICIPANT [ACTION] fail|error|delay [SECONDS] [once|twice|times=N] "
    "[p=P seed=S] [undo]",
    summary="make a participant's action (or with undo, its compensation) misbehave",
    details="""
fail: a business failure (the saga compensates); error: a technical error (the step's retry
policy applies); delay: the message arrives SECONDS late (default 1). Always, unless once,
twice or times=N; with p=P (0..1) it fires at random, reproducibly with seed=S. ACTION may be
left out when the participant has one action. A new fault replaces the one on that handler.
examples:  fault payment fail once    fault shipping create error times=2
           fault inventory delay 0.5    fault payment error p=0.3 seed=7
           fault inventory error undo
""",
    complete=_complete_fault,
)
def cmd_fault(shell: Session, args: list[str]) -> None:
    if not args:
        raise UsageError("fault", "name a participant")
    rt = shell.live()
    participant = find_participant(shell, "fault", args[0])
    kind: str | None = None
    action: str | None = None
    undo = False
    times: int | None = None
    probability, seed, seconds = 1.0, None, 1.0
    candidates = set(handlers(shell, participant)) | set(handlers(shell, participant, undo=True))
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
            times = count("fault", value, "times")
        elif eq and key in ("p", "probability"):
            probability = number("fault", value, "p")
            if probability > 1:
                raise UsageError("fault", f"p must be within 0..1, not {value}")
        elif eq and key == "seed":
            seed = int(number("fault", value, "seed"))
        elif eq and key == "seconds":
            seconds = number("fault", value, "seconds")
        elif kind == "delay" and _is_seconds(arg):
            seconds = number("fault", arg, "seconds")
        elif arg in candidates and action is None:
            action = arg
        else:
            choices = [*FAULT_KINDS, *candidates, *(w.rstrip("=") for w in FAULT_WORDS)]
            raise UsageError("fault", f"unexpected {arg!r}{suggest(arg, choices)}")
    if kind is None:
        raise UsageError("fault", "say which fault: fail, error or delay")
    known = handlers(shell, participant, undo=undo)
    if action is None:
        if len(known) != 1:
            listing = ", ".join(known) or "none"
            raise UsageError("fault", f"{participant} has several actions ({listing}): name one")
        action = known[0]
    if action not in known:
        what = "compensation" if undo else "action"
        raise UsageError(
            "fault",
            f"{participant} has no {what} {action!r} ({what}s: {', '.join(known) or 'none'})",
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


@command("faults", usage="faults", summary="list the injected faults")
def cmd_faults(shell: Session, args: list[str]) -> None:
    if args:
        raise UsageError("faults", "takes no arguments")
    rt = shell.rt
    if rt is None:
        raise CommandError("no runtime is open; type `recover`")
    shell.emit(faults_table(rt.faults))


@command(
    "clear",
    usage="clear [PARTICIPANT]",
    summary="remove injected faults (all, or one participant's)",
    complete=complete_participant,
)
def cmd_clear(shell: Session, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("clear", "takes at most one participant")
    rt = shell.live()
    participant = find_participant(shell, "clear", args[0]) if args else None
    before = len(rt.faults)
    rt.clear_faults(participant)
    where = f" on {participant}" if participant else ""
    shell.emit(f"cleared {before - len(rt.faults)} fault(s){where}")
