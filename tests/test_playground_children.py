"""The playground draws child sagas and hybrid flows, and its timelines show results flowing.

Why: a nested flow that the graph and the timeline flatten or hide is the kind of
choreography "nobody can see". The text graph draws a child saga's own workflow under its
step, and a choreography child as the events it publishes and waits for; the Mermaid
flowcharts link a child step to its child and a reaction to the saga it runs; a timeline
nests a child's entries under its parent's step and shows, on each step's start, the earlier
results its command carries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import sagactor as sa
from sagactor.examples import hybrid
from sagactor.playground import mermaid, render
from sagactor.playground.cli import main

from .nested import TRIP, Trip, desks


def test_the_text_graph_draws_a_child_saga_under_its_step() -> None:
    text = render.graph(TRIP)
    assert "2. flight   child saga flight" in text
    assert "undo 2. flight  (child saga flight)" in text
    below = text.split("runs the child saga 'flight'", 1)[1]
    assert "1. seat    airline.seat" in below  # the child's own workflow, indented
    assert "2. ticket  airline.ticket  --fails-->  undo 1. seat  (airline)" in below


def test_the_text_graph_draws_a_choreography_child_as_its_events() -> None:
    text = render.graph(hybrid.SALE)
    assert "publish OrderPaid -> fulfilment" in text
    assert "CustomerNotified is its result, FulfilmentFailed fails the step" in text


def test_mermaid_links_children_and_the_sagas_reactions_run() -> None:
    chart = mermaid.flowchart(TRIP)
    assert 'k2[["child saga flight: seat -#gt; ticket"]]' in chart
    assert "s2 -.->|runs, held till the end| k2" in chart
    reactions = [
        render.Reaction("Picked", "dispatch", "deliver", ("Shipped",), ("delivery",)),
    ]
    native = mermaid.native_flowchart("fulfilment v1", "OrderPaid", [], [], reactions)
    assert "Picked -.->|dispatch.deliver runs| saga_delivery" in native


def test_a_timeline_nests_the_child_and_shows_the_results_each_step_reads() -> None:
    with sa.Runtime.in_memory(participants=desks(), sagas=[TRIP]) as rt:
        rt.start(TRIP, Trip("t", refuse="room"), saga_id="t").result(5)
        text = render.timeline("t", rt.history("t"), TRIP)
    lines = text.splitlines()
    nested = [line for line in lines if "flight> " in line]
    assert any("run step" in line and "seat -> airline.seat" in line for line in nested)
    # What flowed: the child's ticket reads the seat; the room reads the hold and the ticket.
    ticket = next(line for line in nested if "ticket -> airline.ticket" in line)
    assert "reads seat=seat-t" in ticket
    room = next(line for line in lines if "room -> hotel.room" in line)
    assert "reads hold={ref: hold-t}, flight={number: tkt-t, hold: hold-t}" in room
    # The header and the steps table are the parent's own.
    assert lines[0].startswith("saga t: trip v1, orchestration, compensated")
    assert any(line.split()[1:5] == ["flight", "child", "saga", "flight"] for line in lines)


def test_the_playground_draws_and_runs_the_hybrid_shop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "hybrid.play"
    script.write_text('start sale\nstart sale address=""\ngraph fulfilment\nshow sale-2\n')
    status = main(["play", "--module", "sagactor.examples.hybrid", "--script", str(script)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "sale-1  completed" in out
    assert "sale-2  compensated" in out
    assert "-> dispatch.deliver, runs saga delivery" in out
    assert "fulfilment/dispatch.Picked> coordinator" in out  # three levels in one timeline
