"""``wait``, ``resume``, ``cancel``: what an operator does to sagas in flight or stuck."""

from __future__ import annotations

import time

from ...messages import SagaStatus
from ...names import SAGA_PREFIX, saga_id_of
from ..session import CommandError, Session
from .args import complete_saga_id, number
from .registry import UsageError, command

__all__ = ["cmd_cancel", "cmd_resume", "cmd_wait"]


@command(
    "wait",
    usage="wait [SECONDS]",
    summary="wait (default up to 30 s) for the in-flight sagas to finish",
)
def cmd_wait(shell: Session, args: list[str]) -> None:
    if len(args) > 1:
        raise UsageError("wait", "takes at most a number of seconds")
    timeout = number("wait", args[0], "SECONDS") if args else 30.0
    rt = shell.live()
    ids = [saga_id_of(s) or s for s in rt.journal.open_streams(SAGA_PREFIX)]
    if not ids:
        shell.emit("nothing in flight")
        return
    started = time.monotonic()
    shell.emit(f"waiting for {len(ids)} saga(s) in flight")
    outcomes, pending, crashed = shell.await_runs([rt.run(i) for i in ids], timeout)
    shell.report(outcomes, pending, crashed, time.monotonic() - started)


@command(
    "resume",
    usage="resume ID",
    summary="retry a stuck saga's failed compensation (clear its fault first)",
    complete=complete_saga_id,
)
def cmd_resume(shell: Session, args: list[str]) -> None:
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


@command(
    "cancel",
    usage="cancel ID [REASON]",
    summary="cancel a running saga: what it did is compensated",
    complete=complete_saga_id,
)
def cmd_cancel(shell: Session, args: list[str]) -> None:
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
