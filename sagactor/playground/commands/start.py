"""``start``: start sagas in either mode and wait for their outcomes."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ...errors import RuntimeCrashed
from ...runtime import Mode, SagaRun
from ...sagas.definition import Choreography
from ..domain import InputError, build_input, input_fields
from ..render import Batch
from ..session import Progress, Session, suggest
from .args import MODES, count, find_saga, number
from .registry import UsageError, command

__all__ = ["cmd_start"]


def _complete(shell: Session, before: Sequence[str]) -> list[str]:
    saga_names = [s.name for s in shell.domain.sagas]
    found = shell.domain.saga(next((w for w in before if w in saga_names), saga_names[0]))
    fields = [f"{f}=" for f in input_fields(found)] if found is not None else []
    return [*saga_names, *MODES, *fields, "id=", "timeout=", "nowait"]


@command(
    "start",
    usage="start [N] [SAGA] [orchestration|choreography] [FIELD=VALUE ...] [id=ID] [nowait]",
    summary="start N sagas (default 1) and wait for their outcomes",
    details="""
SAGA defaults to the first definition; the mode to orchestration (orch and choreo work too).
FIELD=VALUE sets an input field over the domain's defaults; {i} in a value is the saga's
number in the batch (customer=c{i}). Ids are SAGA-1, SAGA-2...; id=X names the saga X (or
X-1..X-N for many). Waits up to timeout=SECONDS (default 10) unless nowait; many sagas show
progress and a throughput line.
examples:  start    start 1000    start choreography qty=3    start id=big amount=999999
""",
    complete=_complete,
)
def cmd_start(shell: Session, args: list[str]) -> None:
    n, saga_word = 1, None
    mode: Mode = "orchestration"
    fields: dict[str, str] = {}
    id_prefix: str | None = None
    wait, timeout = True, shell.timeout
    saga_names = [s.name for s in shell.domain.sagas]
    for arg in args:
        key, eq, value = arg.partition("=")
        if arg.isdigit():
            n = count("start", arg, "N")
        elif eq and key == "id":
            if not value or "/" in value:
                raise UsageError("start", f"bad saga id {value!r}")
            id_prefix = value
        elif eq and key == "mode":
            if value not in MODES:
                raise UsageError("start", f"no mode {value!r}{suggest(value, MODES)}")
            mode = MODES[value]
        elif eq and key == "timeout":
            timeout = number("start", value, "timeout")
        elif eq and key == "n":
            n = count("start", value, "N")
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
    saga = find_saga(shell, "start", saga_word)
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
    runs: list[SagaRun] = []
    progress = Progress(shell, "started ", n)
    shell.remember(ids)
    try:
        for first in range(0, n, 500):
            chunk = slice(first, first + 500)
            runs += rt.start_many(saga, inputs[chunk], saga_ids=ids[chunk], mode=mode)
            progress.update(len(runs))
    except RuntimeCrashed:
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
        shell.batch = Batch(n, len(outcomes), seconds)
    shell.report(outcomes, pending, crashed, seconds)
