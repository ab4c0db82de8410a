"""What the playground's commands act on: one runtime over one journal.

A :class:`Session` owns the runtime (and reopens it on ``recover``), knows the saga ids, waits
for outcomes and prints them. Commands (:mod:`.commands`) receive a session; the
:class:`~sagactor.playground.shell.Shell` is a session that also runs command lines, so this
module knows no command and the commands never import the shell.
"""

from __future__ import annotations

import difflib
import logging
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import RuntimeClosed, RuntimeCrashed, SagaQuarantined, SagaTimeout
from ..messages import Outcome, SagaStatus
from ..names import SAGA_PREFIX, saga_id_of
from ..persistence.memory import MemoryJournal
from ..runtime import Runtime, SagaRun
from .domain import Domain
from .render import Batch, progress_bar

__all__ = ["CommandError", "Progress", "Quit", "Session", "outcome_line", "suggest"]

PROGRESS_MIN = 100
"""Starting or waiting for at least this many sagas shows progress."""


class CommandError(Exception):
    """A command could not run: the message is printed as one line, with a suggestion."""


class Quit(Exception):  # noqa: N818 - a signal, not an error
    """The user asked to leave."""


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    # A swap of two letters (strat) keeps every letter: prefer such a match.
    best = next((c for c in close if sorted(c) == sorted(word)), close[0])
    return f" (did you mean {best!r}?)"


class _LogHandler(logging.Handler):
    """sagactor's warnings, to whatever ``sys.stderr`` is at the time (the REPL patches it)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("runtime died"):
            return  # the playground reports crashes itself
        try:
            print(f"[{record.levelname.lower()}] {record.getMessage()}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break the session
            self.handleError(record)


class Progress:
    """A progress bar on a terminal; a few milestone lines otherwise. Silent for small runs."""

    def __init__(self, shell: Session, label: str, total: int) -> None:
        self.shell = shell
        self.label = label
        self.total = total
        self.enabled = total >= PROGRESS_MIN
        self.shown = 0
        self.last_draw = 0.0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.shell.tty:
            now = time.monotonic()
            if now - self.last_draw >= 0.05:
                self.last_draw = now
                self.shell.write("\r" + progress_bar(done, self.total, self.label))
        else:
            quarter = done * 4 // self.total
            if self.shown < quarter < 4:
                self.shown = quarter
                self.shell.emit(progress_bar(done, self.total, self.label))

    def finish(self, done: int) -> None:
        if not self.enabled:
            return
        bar = progress_bar(done, self.total, self.label)
        if self.shell.tty:
            self.shell.write("\r" + bar + "\n")
        else:
            self.shell.emit(bar)


class Session:
    """A playground session over one journal (a file, a temporary file, or memory)."""

    def __init__(
        self,
        domain: Domain,
        *,
        path: str | None = None,
        memory: bool = False,
        out: TextIO | None = None,
        interactive: bool = False,
        tty: bool | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.domain = domain
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self.memory_journal: MemoryJournal | None = MemoryJournal() if memory else None
        if memory:
            self.path = ":memory:"
        elif path is None:
            self._temp = tempfile.TemporaryDirectory(prefix="sagactor-play-")
            self.path = str(Path(self._temp.name) / "playground.db")
        else:
            self.path = path
        self.temporary = self._temp is not None or memory
        self.out = out
        self.interactive = interactive
        self.tty = (out or sys.stdout).isatty() if tty is None else tty
        self.timeout = timeout
        self.rt: Runtime | None = None
        self.participant_objects: dict[str, Any] = {}
        self.failures = 0
        self.batch: Batch | None = None
        self.known_ids: dict[str, None] = {}
        self.counters: dict[str, int] = {}
        self.armed: list[str] = []
        self.mid_recovery: int | None = None
        self.crash_text = ""
        self.crash_noticed = True
        self.py_namespace: dict[str, Any] = {}
        self.marks: list[tuple[float, str]] = []
        """Wall-clock moments the timelines show: when the journal was reopened."""
        self._log_handler = _LogHandler(logging.WARNING)

    # -- output --------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        stream = self.out if self.out is not None else sys.stdout
        stream.write(text)
        stream.flush()

    def emit(self, text: str = "") -> None:
        self.write(text + "\n")

    def fail(self, message: str) -> None:
        self.failures += 1
        self.emit(f"error: {message}")

    # -- the runtime ---------------------------------------------------------------------------

    def open(self) -> list[str]:
        """Open the runtime over the journal; returns the in-flight sagas it resumed."""
        logger = logging.getLogger("sagactor")
        if self._log_handler not in logger.handlers:
            logger.addHandler(self._log_handler)
        self.rt = self._new_runtime(recover=False)
        resumed = _recover(self.rt)
        self.refresh_ids()
        return resumed

    def banner(self, resumed: Sequence[str] = ()) -> str:
        domain = self.domain
        names = ", ".join(sorted(self.participant_objects))
        several = {s.name for s in domain.sagas if sum(o.name == s.name for o in domain.sagas) > 1}
        sagas = ", ".join(s.key if s.name in several else s.name for s in domain.sagas)
        where = "in memory" if self.path == ":memory:" else self.path
        lines = [
            f"sagactor playground over {domain.name}: participants {names}; sagas {sagas}",
            f"journal: {where}" + (" (temporary)" if self._temp is not None else ""),
        ]
        if self.known_ids:
            lines.append(
                f"it holds {len(self.known_ids)} saga(s); resumed {len(resumed)} in flight"
            )
        lines += self.quarantine_lines()
        lines.append("type `help` for the commands, `quit` to leave")
        return "\n".join(lines)

    def _new_runtime(self, *, recover: bool) -> Runtime:
        participants = self.domain.make_participants()
        self.participant_objects = {p.participant_name: p for p in participants}
        if self.memory_journal is not None:
            return Runtime.in_memory(
                journal=self.memory_journal,
                participants=participants,
                sagas=self.domain.sagas,
                recover=recover,
            )
        return Runtime.open(
            self.path,
            participants=participants,
            sagas=self.domain.sagas,
            recover=recover,
            synchronous="normal" if self.temporary else "full",
        )

    def reopen(self) -> tuple[Runtime, list[str]]:
        """Close the current runtime (dead or alive), open a new one, resume in-flight sagas."""
        old, self.rt = self.rt, None
        if old is not None:
            _shut(old)
        self.armed.clear()
        self.crash_text = ""
        self.crash_noticed = True
        rt = self._new_runtime(recover=False)
        self.rt = rt
        self.marks.append((time.time(), "`recover` reopened the journal; in-flight sagas resume"))
        if self.mid_recovery is not None:
            rt.crash_plan.arm("mid-recovery", self.mid_recovery)
            self.armed.append("mid-recovery")
            self.mid_recovery = None
        resumed = _recover(rt)
        self.refresh_ids()
        for line in self.quarantine_lines():
            self.emit(line)
        return rt, resumed

    def quarantine_lines(self) -> list[str]:
        """The quarantined sagas, each with why, and what to do about them."""
        found = self.rt.quarantined() if self.rt is not None else {}
        if not found:
            return []
        lines = [f"! {len(found)} saga(s) quarantined (they cannot be loaded; the others run):"]
        lines += [f"  {saga_id}: {error.cause}" for saga_id, error in sorted(found.items())[:10]]
        lines.append("  fix the cause, then `py rt.retry_quarantined(ID)`")
        return lines

    def close(self) -> None:
        rt, self.rt = self.rt, None
        try:
            if rt is not None:
                _shut(rt)
        finally:
            logging.getLogger("sagactor").removeHandler(self._log_handler)
            if self._temp is not None:
                self._temp.cleanup()
                self._temp = None

    def live(self) -> Runtime:
        """The runtime, if it can work; else a CommandError saying what to do."""
        rt = self.rt
        if rt is None:
            raise CommandError("no runtime is open; type `recover` to reopen the journal")
        if rt.crashed:
            raise CommandError(f"{self.crash_message()}; type `recover` to reopen the journal")
        return rt

    def crash_message(self) -> str:
        rt = self.rt
        fired = rt.crash_plan.fired if rt is not None else None
        if fired is not None:
            return f"the runtime crashed at {fired.point} (a simulated kill -9)"
        return f"the runtime crashed ({self.crash_text or 'it died'})"

    def notice_crash(self) -> None:
        """Report, once, a crash that happened in the background (an armed point fired)."""
        rt = self.rt
        if rt is not None and rt.crashed and not self.crash_noticed:
            self.crash_noticed = True
            self.emit(f"! {self.crash_message()}; type `recover` to reopen the journal")

    def prompt_text(self) -> str:
        rt = self.rt
        if rt is None or rt.crashed:
            return "sagactor (crashed)> "
        return "sagactor> "

    # -- saga ids ------------------------------------------------------------------------------

    def refresh_ids(self) -> None:
        rt = self.rt
        if rt is not None and not rt.crashed:
            for saga_id in rt.saga_ids():
                self.known_ids.setdefault(saga_id)

    def remember(self, ids: Iterable[str]) -> None:
        for saga_id in ids:
            self.known_ids.setdefault(saga_id)
            name, _, number = saga_id.rpartition("-")
            if number.isdigit() and name in self.counters:
                self.counters[name] = max(self.counters[name], int(number))

    def recent_ids(self, limit: int = 200) -> list[str]:
        ids = list(self.known_ids)
        return ids[: -limit - 1 : -1]

    def next_ids(self, saga: str, count: int) -> list[str]:
        """Fresh, short ids: ``order-1``, ``order-2``..., never one the journal has.

        Nothing is reserved: the ids count as used once :meth:`remember` is told of them.
        """
        if saga not in self.counters:
            pattern = re.compile(re.escape(saga) + r"-(\d+)$")
            numbers = [int(m.group(1)) for i in self.known_ids if (m := pattern.match(i))]
            self.counters[saga] = max(numbers, default=0)
        ids: list[str] = []
        number = self.counters[saga]
        while len(ids) < count:
            number += 1
            candidate = f"{saga}-{number}"
            if candidate not in self.known_ids:
                ids.append(candidate)
        return ids

    def resolve_id(self, word: str) -> str:
        """A saga id from what was typed: the id, its number (``3`` for ``order-3``), a prefix."""
        if word in self.known_ids:
            return word
        self.refresh_ids()
        if word in self.known_ids:
            return word
        for matches in (
            [i for i in self.known_ids if i.endswith(f"-{word}")],
            [i for i in self.known_ids if i.startswith(word)],
        ):
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
                raise CommandError(f"{word!r} could be {len(matches)} sagas: {shown}; say which")
        raise CommandError(f"no saga {word!r}{suggest(word, self.recent_ids(2000))}")

    # -- waiting -------------------------------------------------------------------------------

    def await_runs(
        self, runs: Sequence[SagaRun], timeout: float, label: str = "finished"
    ) -> tuple[list[Outcome], list[str], bool]:
        """Outcomes of ``runs`` within ``timeout`` s: (outcomes, ids still running, crashed)."""
        progress = Progress(self, label, len(runs))
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome] = []
        pending: list[str] = []
        crashed = False
        rt = self.rt
        try:
            for run in runs:
                if crashed:
                    pending.append(run.id)
                    continue
                while True:
                    # Short slices: a crash must not leave us waiting for the whole timeout.
                    remaining = deadline - time.monotonic()
                    try:
                        outcomes.append(run.result(max(0.0, min(0.1, remaining))))
                        break
                    except SagaTimeout:
                        if rt is not None and rt.crashed:
                            crashed = True
                        elif remaining > 0.1:
                            continue
                    except (RuntimeCrashed, RuntimeClosed):
                        crashed = True
                    except SagaQuarantined:  # it would not end: show it as it stands
                        outcomes.append(run.status)
                        break
                    pending.append(run.id)
                    break
                progress.update(len(outcomes))
        finally:
            progress.finish(len(outcomes))
        return outcomes, pending, crashed

    def report(
        self, outcomes: Sequence[Outcome], pending: Sequence[str], crashed: bool, seconds: float
    ) -> None:
        """Print outcomes (one line each for a few, counts for many) and what did not finish."""
        if len(outcomes) + len(pending) <= 10:
            for outcome in outcomes:
                self.emit(outcome_line(outcome))
        elif outcomes:
            counts: dict[str, int] = {}
            for outcome in outcomes:
                counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
            listing = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            rate = f" ({len(outcomes) / seconds:.0f} sagas/s)" if seconds > 0 else ""
            self.emit(f"{len(outcomes)} finished in {seconds:.2f}s{rate}: {listing}")
        if crashed:
            self.crash_noticed = True
            shown = ", ".join(pending[:10]) + (" ..." if len(pending) > 10 else "")
            self.emit(
                f"! {self.crash_message()} with {len(pending)} saga(s) in flight: {shown}; "
                "type `recover` to reopen the journal and resume them"
            )
        elif pending:
            shown = ", ".join(pending[:10]) + (" ..." if len(pending) > 10 else "")
            self.emit(
                f"{len(pending)} saga(s) still running after {self.timeout:g}s: {shown} "
                "(`wait` to wait longer, `sagas active` to list them)"
            )


def _recover(rt: Runtime) -> list[str]:
    """``rt.recover()``, and the ids it resumed: every saga whose stream had not ended.

    (The journal is asked too: ``recover()`` may not list every kind of saga it resumes.)
    """
    in_flight = [saga_id_of(s) or s for s in rt.journal.open_streams(SAGA_PREFIX)]
    resumed = rt.recover()
    quarantined = rt.quarantined()
    return [i for i in dict.fromkeys([*resumed, *in_flight]) if i not in quarantined]


def _shut(rt: Runtime) -> None:
    """Close a runtime, and make sure its journal has let go of the file.

    A crash point that fires on the journal's writer thread kills the journal from that very
    thread, which cannot wait for itself; closing the (idempotent) journal here waits for it,
    so the journal can be reopened at once.
    """
    rt.close()
    if rt.crashed:
        rt.journal.close()


def outcome_line(outcome: Outcome) -> str:
    line = f"{outcome.saga_id}  {outcome.status.value}"
    if outcome.status is SagaStatus.COMPLETED:
        return line
    if outcome.reason:
        line += f": {outcome.reason}"
    if outcome.compensated:
        line += f" (undone: {', '.join(outcome.compensated)})"
    return line
