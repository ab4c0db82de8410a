"""The playground: scripted sessions (outputs asserted), `inspect`, and the pure renderers."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from sagactor import Fault, HistoryEntry, Runtime, Saga, Step
from sagactor.examples.shop import Order, make_shop, order_choreography, order_saga
from sagactor.examples.shop_events import OrderCreated
from sagactor.messages import (
    CompensationStarted,
    Handled,
    HandledOutcome,
    SagaCompensated,
    SagaStarted,
    SagaStatus,
    StepAbandoned,
    StepCompensated,
    StepStarted,
    StepSucceeded,
)
from sagactor.persistence.memory import MemoryJournal
from sagactor.playground import mermaid, render
from sagactor.playground.cli import main
from sagactor.playground.domain import InputError, build_input, input_fields, load_domain
from sagactor.playground.journalview import last_records, summarize, summarize_events
from sagactor.playground.repl import PlaygroundCompleter
from sagactor.playground.shell import Shell

ROOT = Path(__file__).resolve().parent.parent


def play(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], script: str, *extra: str
) -> tuple[int, str, str]:
    """Run ``sagactor play --script`` over ``script``; (exit status, stdout, stderr)."""
    file = tmp_path / "session.play"
    file.write_text(textwrap.dedent(script))
    status = main(["play", "--script", str(file), *extra])
    out, err = capsys.readouterr()
    return status, out, err


def errors(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("error: ")]


def squash(text: str) -> str:
    """Columns separated by exactly two spaces, whatever their widths."""
    return re.sub(r" {2,}", "  ", text)


def section(out: str, command: str, *, raw: bool = False) -> str:
    """The output of one echoed command (up to the next prompt), columns squashed."""
    start = out.index(f"> {command}\n") + len(f"> {command}\n")
    following = re.search(r"^sagactor( \(crashed\))?> ", out[start:], re.MULTILINE)
    text = out[start : start + following.start()] if following else out[start:]
    return text if raw else squash(text)


# -- scripted sessions ---------------------------------------------------------------------------


def test_successful_order_with_its_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        # a comment is echoed
        start qty=2 amount=250
        show order-1
        state inventory
        """,
    )
    assert status == 0, out
    assert "# a comment is echoed" in out
    assert "sagactor> start qty=2 amount=250\n" in out
    assert "order-1  completed" in out
    timeline = section(out, "show order-1")
    assert "saga order-1: order v1, orchestration, completed in" in timeline
    assert "qty: 2, amount: 250" in timeline
    steps = ["reserve_inventory", "charge_payment", "create_shipment", "notify"]
    runs = [timeline.index(f"run step  {s} ->") for s in steps]
    assert runs == sorted(runs)
    for participant in ("inventory", "payment", "shipping", "notification"):
        assert f"  {participant} " in timeline  # every participant's records are in it
    assert re.search(r"4  notify  notification\.send  1  ok  \S+  no undo", timeline)
    assert "sku-1: 999998" in section(out, "state inventory")


def test_payment_failure_releases_the_stock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        fault payment fail once
        faults
        start
        show 1
        start
        """,
    )
    assert status == 0, out
    assert "fault on payment.charge: fail (1 more time(s))" in out
    assert re.search(r"payment\s+charge\s+action\s+fail", section(out, "faults"))
    assert (
        "order-1  compensated: step 'charge_payment' failed: injected failure "
        "(undone: reserve_inventory)" in out
    )
    timeline = section(out, "show 1")
    assert "step FAILED  charge_payment: injected failure (business failure)" in timeline
    assert "compensate  reserve_inventory -> inventory.undo reserve" in timeline
    assert "StockReleased" in timeline
    assert "saga COMPENSATED" in timeline
    assert "order-2  completed" in out  # `once`: the next order goes through


def test_shipping_failure_undoes_payment_then_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(tmp_path, capsys, "fault shipping fail once\nstart\nshow order-1\n")
    assert status == 0, out
    assert "(undone: charge_payment, reserve_inventory)" in out
    timeline = section(out, "show order-1")
    refund = timeline.index("compensate  charge_payment -> payment.undo charge")
    release = timeline.index("compensate  reserve_inventory -> inventory.undo reserve")
    assert timeline.index("step FAILED  create_shipment") < refund < release
    assert timeline.index("Refunded") < release < timeline.index("StockReleased")
    assert re.search(r"2  charge_payment .* undone in", timeline)


def test_crash_at_a_point_then_recover_resumes_the_saga(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        start
        crash at before-reply 2
        start
        recover
        show order-2
        py rt.state("payment").applied["order-2/charge_payment"]
        sagas
        """,
    )
    assert status == 0, out
    assert "armed: the runtime dies at the 2nd pass through before-reply from now" in out
    assert (
        "! the runtime crashed at before-reply (a simulated kill -9) with 1 saga(s) in flight: "
        "order-2" in out
    )
    assert "sagactor (crashed)> recover\n" in out
    assert "resumed 1 in-flight saga(s): order-2" in out
    assert "order-2  completed" in section(out, "recover")
    timeline = section(out, "show order-2")
    assert "`recover` reopened the journal" in timeline
    assert "saga COMPLETED" in timeline
    # The charge command was repeated after the restart; payment's inbox applied it once.
    assert section(out, 'py rt.state("payment").applied["order-2/charge_payment"]').strip() == "1"
    assert "2 saga(s): 2 completed" in section(out, "sagas")


def test_a_crashed_runtime_refuses_work_until_recovered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = play(
        tmp_path,
        capsys,
        """
        start nowait
        crash
        sagas
        start
        recover
        sagas
        """,
        "--memory",
    )
    assert status == 1  # the two commands run while crashed failed
    assert "crashed (as kill -9 would" in out
    assert (
        errors(out)
        == [
            "error: the runtime crashed (killed on request, as kill -9 would); "
            "type `recover` to reopen the journal"
        ]
        * 2
    )
    assert "reopened the journal (memory)" in out
    assert "1 saga(s): 1 completed" in out.split("> recover\n")[1]
    assert "2 command(s) of the script failed" in err


def test_bad_input_gets_one_line_with_a_suggestion_and_the_script_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = play(
        tmp_path,
        capsys,
        """
        strat
        start 2 qtty=3
        start zero
        start 1 qty=many
        show order-99
        start
        show order-9
        fault paymnt fail
        fault payment explode
        fault payment
        crash at before-replay
        sagas complted
        state shiping
        graph ordr
        tail x
        help shw
        py 1/0
        start "unclosed
        mermaid nothing
        py 6 * 7
        """,
    )
    assert status == 1
    assert errors(out) == [
        "error: unknown command 'strat' (did you mean 'start'?); `help` lists the commands",
        "error: start: Order has no field 'qtty' (fields: id, customer, sku, qty, amount, "
        "address) (usage: start [N] [SAGA] [orchestration|choreography] [FIELD=VALUE ...] "
        "[id=ID] [nowait])",
        "error: start: unexpected 'zero' (usage: start [N] [SAGA] [orchestration|choreography] "
        "[FIELD=VALUE ...] [id=ID] [nowait])",
        "error: start: bad input for Order: Expected `int`, got `str` - at `$.qty` (usage: "
        "start [N] [SAGA] [orchestration|choreography] [FIELD=VALUE ...] [id=ID] [nowait])",
        "error: no saga 'order-99'",
        "error: no saga 'order-9' (did you mean 'order-1'?)",
        "error: fault: no participant 'paymnt' (did you mean 'payment'?) (usage: fault "
        "PARTICIPANT [ACTION] fail|error|delay [SECONDS] [once|twice|times=N] [p=P seed=S] "
        "[undo])",
        "error: fault: unexpected 'explode' (usage: fault PARTICIPANT [ACTION] "
        "fail|error|delay [SECONDS] [once|twice|times=N] [p=P seed=S] [undo])",
        "error: fault: say which fault: fail, error or delay (usage: fault PARTICIPANT "
        "[ACTION] fail|error|delay [SECONDS] [once|twice|times=N] [p=P seed=S] [undo])",
        "error: crash: no crash point 'before-replay' (did you mean 'before-reply'?); points: "
        "after-commit, before-reply, before-dispatch, mid-recovery (usage: crash [now] | "
        "crash at POINT [HIT] | crash off)",
        "error: sagas: no status 'complted' (did you mean 'completed'?) (usage: sagas "
        "[STATUS|active] [N|all])",
        "error: state: no participant 'shiping' (did you mean 'shipping'?) (usage: state "
        "PARTICIPANT)",
        "error: graph: no saga definition 'ordr' (did you mean 'order'?) (usage: graph [SAGA] "
        "[choreography])",
        "error: tail: N must be a whole number of at least 1, not 'x' (usage: tail [N])",
        "error: help: no command 'shw' (did you mean 'show'?) (usage: help [COMMAND])",
        "error: py: ZeroDivisionError: division by zero",
        "error: cannot read that line: No closing quotation",
        "error: no saga 'nothing' and no saga definition 'nothing'",
    ]
    assert "order-1  completed" in out  # good commands between bad ones still ran
    assert section(out, "py 6 * 7").strip() == "42"
    assert "18 command(s) of the script failed" in err


def test_help_lists_every_command_and_details_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(tmp_path, capsys, "help\nhelp fault\nhelp ls\n")
    assert status == 0
    listing = section(out, "help")
    for name in ["start", "fault", "faults", "clear", "crash", "recover", "sagas", "show"]:
        assert re.search(rf"^  {name}\s+\S", listing, re.MULTILINE), name
    for name in ["state", "tail", "graph", "mermaid", "stats", "py", "wait", "quit"]:
        assert re.search(rf"^  {name}\s+\S", listing, re.MULTILINE), name
    assert "usage: fault PARTICIPANT [ACTION] fail|error|delay" in section(out, "help fault")
    assert "usage: sagas [STATUS|active] [N|all]" in section(out, "help ls")


def test_many_sagas_show_progress_and_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        start 400 customer=c{i} amount=5
        fault payment error p=0.2 seed=3
        start 100
        clear
        sagas completed 3
        stats
        tail 3
        """,
    )
    assert status == 0, out
    first = section(out, "start 400 customer=c{i} amount=5")
    assert "started 400 order sagas (orchestration): order-1 .. order-400" in first
    assert "finished [###############...............] 200/400 (50%)" in first
    assert "finished [##############################] 400/400 (100%)" in first
    assert re.search(r"400 finished in .*: 400 completed", first)
    listing = section(out, "sagas completed 3")
    assert re.search(r"^500 saga\(s\): ", listing)
    assert "(the last 3 of" in listing
    stats = section(out, "stats")
    assert re.search(r"sagas: 500 \(", stats)
    assert "latency, start to end (500 finished): p50 " in stats
    assert "last start: 100 of 100 finished" in stats
    assert re.search(r"charge_payment\s+\d+\s+\S+ms", stats)
    tail = section(out, "tail 3").splitlines()
    assert tail[0].split() == ["pos", "time", "stream", "seq", "type", "data"]
    assert len(tail) == 4


def test_graph_and_mermaid_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "run.mmd"
    status, out, _ = play(
        tmp_path,
        capsys,
        f"""
        graph
        mermaid order
        start
        mermaid order-1 {target}
        """,
    )
    assert status == 0, out
    assert "2. charge_payment     payment.charge     --fails-->  undo 1. reserve_inventory" in out
    assert section(out, "mermaid order").startswith("flowchart TD\n")
    assert "wrote 21 lines of Mermaid" in out
    assert target.read_text().startswith("sequenceDiagram\n")


def test_stuck_saga_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        fault inventory error undo
        fault shipping fail
        start
        sagas stuck
        show order-1
        clear
        resume order-1
        """,
    )
    assert status == 0, out
    assert "order-1  stuck: compensation of 'reserve_inventory' failed" in out
    assert "order-1  order  orchestration  stuck" in section(out, "sagas stuck")
    timeline = section(out, "show order-1")
    assert "saga STUCK" in timeline
    assert "FAILED after 3 attempt(s)" in timeline
    assert "order-1  compensated" in section(out, "resume order-1")


def test_commands_on_stdin_and_quit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("start\nquit\nstart\n"))
    assert main(["play", "--memory"]) == 0
    out = capsys.readouterr().out
    assert "order-1  completed" in out
    assert "order-2" not in out  # nothing runs after quit


def test_a_journal_file_outlives_the_session_and_inspect_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "shop.db")
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        start 2
        fault inventory error undo
        fault shipping fail once
        start
        crash at before-reply 2
        start
        """,
        db,
    )
    assert status == 0, out
    assert "crashed at before-reply" in out
    # The file now holds 2 completed sagas, a stuck one and one in flight.
    status = main(["inspect", db])
    report, err = capsys.readouterr()
    assert status == 0, err
    assert f"journal {db}" in report
    assert "sagas: 4 (1 running, 2 completed, 1 stuck)" in report
    assert "participants: inventory (" in report
    assert "needing attention: 2" in report
    assert re.search(
        r"order-3\s+order\s+stuck .* stuck: compensation of 'reserve_inventory' failed", report
    )
    assert re.search(
        r"order-4\s+order\s+running .* in flight: step charge_payment \(attempt 1\) sent", report
    )
    # The next session resumes the in-flight saga at once, and numbers on from order-4.
    status, out, _ = play(tmp_path, capsys, "wait\nstart\nsagas\n", db)
    assert status == 0, out
    assert "it holds 4 saga(s); resumed 1 in flight" in out
    assert "order-5  completed" in out
    assert main(["inspect", db, "--all"]) == 0
    report = capsys.readouterr().out
    assert "sagas: 5 (4 completed, 1 stuck)" in report
    assert "needing attention: 1" in report
    assert "order-5  order  orchestration  completed" in report


def test_inspect_refuses_a_journal_in_use_or_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "live.db"
    with Runtime.open(db, participants=make_shop(), sagas=[order_saga]) as rt:
        rt.start(order_saga, Order("1", "a", "sku-1", 1, 1)).result(10)
        assert main(["inspect", str(db)]) == 1
        assert "is locked: a running sagactor has it open" in capsys.readouterr().err
        assert main(["play", str(db), "--script", os.devnull]) == 1
        assert "is open by another running sagactor" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "nope.db")]) == 1
    assert "no journal at" in capsys.readouterr().err
    (tmp_path / "junk.db").write_text("not a database")
    assert main(["inspect", str(tmp_path / "junk.db")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_a_users_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "bank.py"
    module.write_text(
        textwrap.dedent(
            """
            import msgspec
            from sagactor import Participant, Saga, Step, StepContext, action, compensation, evolve

            class Transfer(msgspec.Struct, frozen=True):
                id: str
                amount: int

            class Moved(msgspec.Struct, frozen=True):
                amount: int

            class Ledger(Participant[dict]):
                name = "ledger"

                def initial_state(self) -> dict:
                    return {"total": 0}

                @action("move")
                def move(self, ctx: StepContext, t: Transfer) -> int:
                    ctx.record(Moved(t.amount))
                    return t.amount

                @compensation("move")
                def unmove(self, ctx: StepContext, t: Transfer, done: int) -> None:
                    ctx.record(Moved(-done))

                @evolve
                def _moved(self, state: dict, change: Moved) -> None:
                    state["total"] += change.amount

            def participants():
                return [Ledger()]

            transfer = Saga("transfer", [Step("move", "ledger", "move")], input_type=Transfer)
            sagas = [transfer]
            defaults = {"transfer": {"amount": 5}}
            """
        )
    )
    script = "start 2\nstart amount=10\nstate ledger\nfault ledger fail once\nstart\n"
    status, out, _ = play(tmp_path, capsys, script, "--module", str(module))
    assert status == 0, out
    assert "participants ledger; sagas transfer" in out
    assert "transfer-3  completed" in out
    assert "total: 20" in out
    assert "transfer-4  compensated: step 'move' failed: injected failure" in out
    # A dotted module name works too.
    monkeypatch.syspath_prepend(str(tmp_path))
    status, out, _ = play(tmp_path, capsys, "start\n", "--module", "bank")
    assert status == 0, out
    assert "transfer-1  completed" in out
    # A module without sagas is refused with a clear message.
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert main(["play", "--module", str(tmp_path / "empty.py"), "--script", os.devnull]) == 1
    assert "defines no participants" in capsys.readouterr().err


def test_python_dash_m_runs_the_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sagactor.playground", "--script", "sagactor/playground/demo.play"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "(orchestration): order-1" in out
    assert "(choreography): order-2" in out
    assert "saga order-2: order v1, choreography, completed" in out
    assert "order-3  compensated: step 'charge_payment' failed" in out
    assert (
        "order-4  compensated: step 'create_shipment' failed: injected failure "
        "(undone: charge_payment, reserve_inventory)" in out
    )
    assert "with 1 saga(s) in flight: order-5" in out
    assert "resumed 1 in-flight saga(s): order-5" in out
    assert "sequenceDiagram" in out
    assert "latency, start to end" in out
    assert not errors(out)


# -- completion ----------------------------------------------------------------------------------


@pytest.fixture
def shell() -> Iterator[Shell]:
    session = Shell(load_domain(None), memory=True, out=io.StringIO())
    session.open()
    try:
        session.execute("start 2")
        yield session
    finally:
        session.close()


def completions(shell: Shell, text: str) -> list[str]:
    completer = PlaygroundCompleter(shell)
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_completion_of_commands_and_arguments(shell: Shell) -> None:
    assert completions(shell, "sta") == ["start", "state", "stats"]
    assert completions(shell, "rec") == ["recover"]
    assert completions(shell, "fault pay") == ["payment"]
    assert {"charge", "fail", "error", "delay", "once", "undo"} <= set(
        completions(shell, "fault payment ")
    )
    assert completions(shell, "crash at b") == ["before-reply", "before-dispatch"]
    assert completions(shell, "show ") == ["order-2", "order-1"]
    assert completions(shell, "state n") == ["notification"]
    assert completions(shell, "sagas comp") == ["compensating", "completed", "compensated"]
    assert "qty=" in completions(shell, "start 3 q")
    assert completions(shell, "start ch") == ["choreography", "choreo"]
    assert completions(shell, "mermaid or") == [
        "order",
        "order-parallel",
        "order-native",
        "order-2",
        "order-1",
    ]
    assert completions(shell, "start order-n") == ["order-native"]
    assert completions(shell, "nosuch ") == []


def test_ids_resolve_by_number_or_prefix(shell: Shell) -> None:
    assert shell.resolve_id("order-1") == "order-1"
    assert shell.resolve_id("2") == "order-2"
    assert shell.next_ids("order", 2) == ["order-3", "order-4"]


# -- inputs --------------------------------------------------------------------------------------


def test_build_input_from_fields_and_defaults() -> None:
    defaults = {"customer": "alice", "sku": "sku-1", "qty": 1, "amount": 100}
    order = build_input(
        order_saga, {"qty": "3", "customer": "c{i}"}, defaults, saga_id="o-7", index=7
    )
    assert order == Order("o-7", "c7", "sku-1", 3, 100)
    with pytest.raises(InputError, match=re.escape("needs sku=..., qty=..., amount=...")):
        build_input(order_saga, {"customer": "x"}, {}, saga_id="o", index=1)
    created = build_input(order_choreography, {"qty": "4"}, defaults, saga_id="n-1", index=1)
    assert created == OrderCreated(Order("n-1", "alice", "sku-1", 4, 100))
    assert input_fields(order_choreography)["qty"] is True
    untyped = Saga("free", [Step("a", "p", "act")])
    assert build_input(untyped, {"n": "2", "s": "x"}, {"k": 1}, saga_id="f", index=1) == {
        "k": 1,
        "n": 2,
        "s": "x",
    }


# -- journal view --------------------------------------------------------------------------------


def test_summaries_and_tail_read_the_journal_alone() -> None:
    journal = MemoryJournal()
    with Runtime.in_memory(journal=journal, participants=make_shop()) as rt:
        rt.start(order_saga, Order("1", "a", "sku-1", 1, 1), saga_id="ok").result(10)
        rt.inject("payment", "charge", Fault("fail"))
        rt.start(order_saga, Order("2", "a", "sku-1", 1, 1), saga_id="bad").result(10)
    summaries = {s.saga_id: s for s in summarize(journal)}
    assert summaries["ok"].status is SagaStatus.COMPLETED
    assert summaries["ok"].done == [
        "reserve_inventory",
        "charge_payment",
        "create_shipment",
        "notify",
    ]
    assert set(summaries["ok"].step_seconds) == set(summaries["ok"].done)
    assert summaries["bad"].status is SagaStatus.COMPENSATED
    assert summaries["bad"].compensated == ["reserve_inventory"]
    assert summaries["bad"].latency is not None
    everything = journal.read_all()
    assert last_records(journal, 5) == everything[-5:]
    assert last_records(journal, 10_000) == everything
    assert last_records(MemoryJournal(), 3) == []


def test_summary_of_an_unfinished_saga_says_where_it_stands() -> None:
    raw = msgspec.Raw(msgspec.msgpack.encode({}))
    started = SagaStarted(saga="s", version=1, mode="orchestration", input=raw, digest="d")
    summary = summarize_events("x", [(1.0, started), (1.0, StepStarted(step="a", attempt=2))])
    assert summary.status is SagaStatus.RUNNING
    assert summary.latency is None
    assert summary.where() == "in flight: step a (attempt 2) sent, no answer recorded"


# -- renderers -----------------------------------------------------------------------------------


def _entry(position: int, ts: float, source: str, event: object) -> HistoryEntry:
    return HistoryEntry(position, ts, source, type(event).__name__, event, "")


OK = HandledOutcome.OK


def shipping_failure() -> list[HistoryEntry]:
    """A synthetic history: shipping fails; payment then inventory are compensated."""
    order = Order("o", "alice", "sku-1", 1, 100)
    raw = msgspec.Raw(msgspec.msgpack.encode(order))
    ok = msgspec.Raw(msgspec.msgpack.encode({"key": "k"}))
    events: list[tuple[str, object]] = [
        (
            "coordinator",
            SagaStarted(saga="order", version=1, mode="orchestration", input=raw, digest="d"),
        ),
        ("coordinator", StepStarted(step="reserve_inventory", attempt=1)),
        (
            "inventory",
            Handled(key="k1", saga_id="o", step="reserve_inventory", kind="action", outcome=OK),
        ),
        ("coordinator", StepSucceeded(step="reserve_inventory", result=ok)),
        ("coordinator", StepStarted(step="charge_payment", attempt=1)),
        (
            "payment",
            Handled(key="k2", saga_id="o", step="charge_payment", kind="action", outcome=OK),
        ),
        ("coordinator", StepSucceeded(step="charge_payment", result=ok)),
        ("coordinator", StepStarted(step="create_shipment", attempt=1)),
        (
            "coordinator",
            StepAbandoned(step="create_shipment", attempt=1, reason="no truck", business=True),
        ),
        ("coordinator", CompensationStarted(step="charge_payment", attempt=1)),
        ("coordinator", StepCompensated(step="charge_payment")),
        ("coordinator", CompensationStarted(step="reserve_inventory", attempt=1)),
        ("coordinator", StepCompensated(step="reserve_inventory")),
        ("coordinator", SagaCompensated(reason="step 'create_shipment' failed: no truck")),
    ]
    return [_entry(i, 100.0 + i / 1000, who, e) for i, (who, e) in enumerate(events, 1)]


def test_timeline_renders_steps_attempts_compensations_and_timings() -> None:
    text = render.timeline("o", shipping_failure(), order_saga, [(100.0105, "restarted")])
    lines = squash(text).splitlines()
    assert lines[0] == "saga o: order v1, orchestration, compensated in 13.0ms"
    assert lines[1] == (
        "  input:  {id: o, customer: alice, sku: sku-1, qty: 1, amount: 100, address: 1 Main St}"
    )
    assert lines[2] == "  reason: step 'create_shipment' failed: no truck"
    assert lines[4] == "  time  who  what  detail"
    assert lines[5] == "  +0.00ms  coordinator  saga started  order v1, orchestration"
    assert lines[6] == (
        "  +1.0ms  coordinator  run step  reserve_inventory -> inventory.reserve (attempt 1)"
    )
    assert lines[7] == "  +2.0ms  inventory  handled action  reserve_inventory ok"
    assert (
        "  +8.0ms  coordinator  step FAILED  create_shipment: no truck (business failure)" in lines
    )
    assert "  +9.5ms  --  -- playground --  restarted" in lines  # between +9ms and +10ms
    header = next(i for i, line in enumerate(lines) if line.startswith("  #  step"))
    assert lines[header] == "  #  step  handler  attempts  outcome  took  compensation"
    assert lines[header + 1] == (
        "  1  reserve_inventory  inventory.reserve  1  ok  2.0ms  undone in 1.0ms"
    )
    assert lines[header + 3] == "  3  create_shipment  shipping.create  1  FAILED  1.0ms  -"
    assert lines[header + 4] == "  4  notify  notification.send  -  not run  -  no undo"


def parse_sequence(text: str) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """Participants declared, and messages as (from, arrow, to, text), in order."""
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    declared: list[str] = []
    messages: list[tuple[str, str, str, str]] = []
    for line in lines[1:]:
        assert line.startswith("    "), line
        body = line.strip()
        if body.startswith("participant "):
            assert not messages, "participants are declared before the first message"
            declared.append(body.split()[1])
            continue
        match = re.fullmatch(r"(\w+)(->>|-->>|--x|-\))(\w+): (.+)", body)
        if match:
            messages.append((match[1], match[2], match[3], match[4]))
        else:
            assert re.fullmatch(r"(title .+|Note (over|right of) \w+(,\w+)?: .+)", body), body
    return declared, messages


def test_mermaid_sequence_of_a_synthetic_run() -> None:
    declared, messages = parse_sequence(mermaid.sequence("o", shipping_failure(), order_saga))
    assert declared == ["coordinator", "inventory", "payment", "shipping", "notification"]
    assert messages == [
        ("coordinator", "->>", "inventory", "reserve (reserve_inventory, attempt 1)"),
        ("inventory", "-->>", "coordinator", "ok (reserve_inventory)"),
        ("coordinator", "->>", "payment", "charge (charge_payment, attempt 1)"),
        ("payment", "-->>", "coordinator", "ok (charge_payment)"),
        ("coordinator", "->>", "shipping", "create (create_shipment, attempt 1)"),
        ("shipping", "--x", "coordinator", "failed: no truck"),
        ("coordinator", "->>", "payment", "undo charge (charge_payment, attempt 1)"),
        ("payment", "-->>", "coordinator", "undone (charge_payment)"),
        ("coordinator", "->>", "inventory", "undo reserve (reserve_inventory, attempt 1)"),
        ("inventory", "-->>", "coordinator", "undone (reserve_inventory)"),
    ]


def test_mermaid_sequence_of_a_real_run() -> None:
    with Runtime.in_memory(participants=make_shop()) as rt:
        rt.inject("payment", "charge", Fault("error", times=1))
        rt.inject("shipping", "create", Fault("fail"))
        run = rt.start(order_saga, Order("1", "a", "sku-1", 1, 1), saga_id="r")
        assert run.result(10).status is SagaStatus.COMPENSATED
        text = mermaid.sequence("r", rt.history("r"), order_saga)
    declared, messages = parse_sequence(text)
    assert set(declared) >= {sender for sender, *_ in messages} | {to for *_, to, _ in messages}
    arrows = [(f, a, t) for f, a, t, _ in messages]
    assert arrows == [
        ("coordinator", "->>", "inventory"),
        ("inventory", "-->>", "coordinator"),
        ("coordinator", "->>", "payment"),
        ("payment", "--x", "coordinator"),  # the injected error, then the retry
        ("coordinator", "->>", "payment"),
        ("payment", "-->>", "coordinator"),
        ("coordinator", "->>", "shipping"),
        ("shipping", "--x", "coordinator"),
        ("coordinator", "->>", "payment"),
        ("payment", "-->>", "coordinator"),
        ("coordinator", "->>", "inventory"),
        ("inventory", "-->>", "coordinator"),
    ]
    assert messages[4][3] == "charge (charge_payment, attempt 2)"
    assert "Note right of payment: Charged" in text
    assert text.index("Note right of payment: Refunded") < text.index("undone (charge_payment)")


def test_choreography_is_drawn_as_published_events_and_deliveries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        graph order choreography
        fault shipping fail once
        start choreography
        show order-1
        mermaid order-1
        """,
    )
    assert status == 0, out
    graph = section(out, "graph order choreography")
    assert "StepFailed(create_shipment)  payment: undo charge (charge_payment)" in graph
    assert "StepSucceeded(reserve_inventory)  payment: charge (charge_payment)" in graph
    timeline = section(out, "show order-1")
    assert "saga order-1: order v1, choreography, compensated" in timeline
    assert "dispatcher  deliver  to payment: charge (charge_payment, attempt 1)" in timeline
    assert "shipping  publish step FAILED  create_shipment: injected failure" in timeline
    assert "coordinator" not in timeline
    declared, messages = parse_sequence(section(out, "mermaid order-1", raw=True))
    assert declared == ["dispatcher", "inventory", "payment", "shipping", "notification"]
    assert messages == [
        ("dispatcher", "-)", "inventory", "on saga started: reserve (attempt 1)"),
        ("inventory", "-)", "payment", "on reserve_inventory succeeded: charge (attempt 1)"),
        ("payment", "-)", "shipping", "on charge_payment succeeded: create (attempt 1)"),
        (
            "shipping",
            "-)",
            "payment",
            "on create_shipment failed: injected failure: undo charge (attempt 1)",
        ),
        ("payment", "-)", "inventory", "on charge_payment undone: undo reserve (attempt 1)"),
        ("inventory", "-)", "dispatcher", "reserve_inventory undone"),
    ]


def test_native_choreography_runs_draws_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        graph order-native
        mermaid order-native
        start order-native qty=2
        start order-native qty=5000000
        show order-native-2
        mermaid order-native-1
        start
        show 1
        """,
    )
    assert status == 1, out  # the one ambiguous id below
    graph = section(out, "graph order-native")
    assert graph.splitlines()[0].startswith("order-native v1: native choreography; starts with")
    assert "-> shipping.on_paid, may publish OrderShipped | OrderCancelled" in graph
    assert "check: every event is handled, every piece of work has a compensation path" in graph
    flow = section(out, "mermaid order-native", raw=True).splitlines()
    assert flow[0] == "flowchart TD"
    assert "    OrderCreated -->|inventory.on_order| InventoryReserved" in flow
    assert "    InventoryReleased -->|payment.on_released| PaymentRefunded" in flow
    assert "order-native-1  completed" in out
    assert "order-native-2  compensated: OrderCancelled: only " in out
    assert "(ended with PaymentRefunded)" in out
    timeline = section(out, "show order-native-2")
    assert "saga order-native-2: order-native v1, native choreography, compensated" in timeline
    assert "dispatcher  start event  OrderCreated {order: {id: order-native-2" in timeline
    assert "inventory  publish  InventoryFailed" in timeline
    assert "payment  reacted to InventoryReleased  ok" in timeline
    assert "6  PaymentRefunded  payment  -" in timeline
    declared, messages = parse_sequence(section(out, "mermaid order-native-1", raw=True))
    assert declared == ["dispatcher", "inventory", "payment", "shipping", "notification"]
    arrows = [(f, a, t, m) for f, a, t, m in messages]
    assert set(arrows[:2]) == {
        ("dispatcher", "-)", "inventory", "OrderCreated"),
        ("dispatcher", "-)", "payment", "OrderCreated"),
    }
    assert set(arrows[2:4]) == {
        ("inventory", "-)", "shipping", "InventoryReserved"),
        ("payment", "-)", "shipping", "PaymentProcessed"),
    }
    assert arrows[4:] == [
        ("shipping", "-)", "notification", "OrderShipped"),
        ("notification", "-)", "dispatcher", "CustomerNotified"),
    ]
    # `1` is order-1 and order-native-1: the shortcut says so instead of guessing.
    assert errors(out) == [
        "error: '1' could be 2 sagas: order-native-1, order-1; say which",
    ]


def test_native_saga_crashed_before_dispatch_is_resumed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = play(
        tmp_path,
        capsys,
        """
        crash at before-dispatch 2
        start order-native
        recover
        show order-native-1
        """,
    )
    assert status == 0, out
    assert "crashed at before-dispatch (a simulated kill -9) with 1 saga(s) in flight" in out
    assert "resumed 1 in-flight saga(s): order-native-1" in out
    assert "order-native-1  completed" in section(out, "recover")
    assert "`recover` reopened the journal" in section(out, "show order-native-1")


def test_mermaid_flowchart_structure() -> None:
    saga = Saga(
        "trip",
        [
            Step("car", "cars", "rent"),
            Step("mail", "mailer", "send", compensable=False),
            Step("end", "hotels", "book", timeout=2.0),
        ],
    )
    text = mermaid.flowchart(saga)
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "flowchart TD"
    nodes = {m[1] for line in lines if (m := re.fullmatch(r"(\w+)(\[|\(\[).*", line))}
    edges = [
        m.groups()
        for line in lines
        if (m := re.fullmatch(r"(\w+) (-->|-\.->)(?:\|([^|]+)\|)? (\w+)", line))
    ]
    assert nodes == {"start", "s1", "s2", "s3", "completed", "compensated", "c1", "c3", "stuck"}
    assert all(a in nodes and b in nodes for a, _, _, b in edges)
    assert ("s2", "-.->", "fails", "c1") in edges
    assert ("s3", "-.->", "fails", "c1") in edges  # the mail step has nothing to undo
    assert ("s3", "-.->", "times out", "c3") in edges
    assert ("c3", "-->", None, "c1") in edges
    assert ("c1", "-->", None, "compensated") in edges
    assert ("s3", "-->", "ok", "completed") in edges
    assert 's2["2. mail<br/>mailer.send<br/>no undo"]' in lines


def test_mermaid_text_is_escaped_and_ids_are_safe() -> None:
    assert mermaid.text('a;b #1 <x> "q"\nnext') == "a#59;b #35;1 #lt;x#gt; #quot;q#quot; next"
    assert mermaid.node_id("end") == "p_end"
    assert mermaid.node_id("my-service") == "my_service"
    assert mermaid.node_id("2fa") == "p_2fa"


def test_graph_draws_the_compensation_path() -> None:
    text = render.graph(order_saga)
    assert text.splitlines()[0].startswith("order v1: 4 steps")
    assert "  1. reserve_inventory  inventory.reserve  --fails-->  (compensated)" in text
    assert (
        "  4. notify             notification.send  --fails-->  undo 3. create_shipment  (shipping)"
        in text
    )
    assert "retry x3, backoff 10.0ms" in text
    assert "no undo" in text
    assert text.rstrip().endswith("(completed)")


def test_small_renderers() -> None:
    assert render.table(["a", "n"], [["x", 1], ["yy", 10]]) == "  a    n\n  x    1\n  yy  10"
    assert render.percentile([5, 1, 3, 2, 4], 50) == 3
    assert render.percentile([1, 2, 3, 4], 99) == 4
    assert render.duration(0.0004) == "0.40ms"
    assert render.duration(0.0123) == "12.3ms"
    assert render.duration(2.5) == "2.50s"
    assert render.duration(125) == "2m05s"
    assert render.progress_bar(1, 4, "done", width=8) == "done [##......] 1/4 (25%)"
    assert (
        render.compact(Order("1", "a", "s", 2, 3))
        == "{id: 1, customer: a, sku: s, qty: 2, amount: 3, address: 1 Main St}"
    )
    assert render.compact("x" * 100, 10) == "xxxxxxx..."
    assert render.pretty(
        {"a": {str(i): i for i in range(20)}, "b": []}, max_items=3
    ).splitlines() == [
        "a: (20 entries)",
        "  0: 0",
        "  1: 1",
        "  2: 2",
        "  ... 17 more",
        "b: []",
    ]
