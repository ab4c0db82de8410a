"""A script that forgets ``close()`` (or ``with``) still exits, with its journal flushed.

The runtime's actors ran on non-daemon threads, so a script that started sagas and simply
ended never exited. Now they are daemon threads and every runtime still open is closed at
interpreter exit: the child process below starts sagas, never closes its runtime, and must
end by itself (the subprocess timeout fails the test otherwise). On SQLite, the journal was
closed cleanly (SQLite removes the ``-wal`` file only on a clean close) and reopening it
finishes every acknowledged saga, each step's effect applied once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec
import pytest

import sagactor as sa

ROOT = Path(__file__).resolve().parents[1]
WAIT = 10.0


class Order(msgspec.Struct, frozen=True):
    n: int


class Done(msgspec.Struct, frozen=True):
    key: str


class Slow(sa.Participant[list[str]]):
    """Takes a little while per step, so that sagas are still running when the script ends."""

    name = "slow"

    def initial_state(self) -> list[str]:
        return []

    @sa.action("work")
    def work(self, ctx: sa.StepContext, order: Order) -> str:
        time.sleep(0.005)
        ctx.record(Done(ctx.idempotency_key))
        return ctx.idempotency_key

    @sa.compensation("work")
    def undo(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        raise AssertionError("nothing fails here")

    @sa.evolve
    def _done(self, state: list[str], change: Done) -> None:
        state.append(change.key)


SAGA = sa.Saga(
    "slow",
    steps=[
        sa.Step("a", participant="slow", action="work"),
        sa.Step("b", participant="slow", action="work"),
    ],
    input_type=Order,
)

SCRIPT = textwrap.dedent(
    """
    import sys

    import sagactor as sa
    from tests.test_exit_without_close import SAGA, Order, Slow

    where = sys.argv[1]
    if where == "memory":
        rt = sa.Runtime.in_memory(participants=[Slow()])
    else:
        rt = sa.Runtime.open(where, participants=[Slow()])
    assert rt.start(SAGA, Order(0), saga_id="first").result(10).status == "completed"
    for n in range(1, 40):
        print(rt.start(SAGA, Order(n), saga_id=f"s{n}").id, flush=True)
    if len(sys.argv) > 2:  # a second runtime, forgotten too
        other = sa.Runtime.in_memory(participants=[Slow()])
        other.start(SAGA, Order(99))
    print("end of script", flush=True)
    # no close(), no `with`: the script just ends
    """
)


def _run_script(tmp_path: Path, *args: str) -> list[str]:
    script = tmp_path / "forgetful.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,  # before the fix the child never exited
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "end of script", done.stdout
    return lines[:-1]


@pytest.mark.parametrize("second", [False, True])
def test_a_script_without_close_exits_and_its_journal_finishes_every_saga(
    tmp_path: Path, second: bool
) -> None:
    path = tmp_path / "forgot.db"
    acknowledged = _run_script(tmp_path, str(path), *(["again"] if second else []))
    assert len(acknowledged) == 39
    assert not Path(f"{path}-wal").exists()  # closed cleanly at exit, not just abandoned
    with sa.Runtime.open(path, participants=[Slow()], sagas=[SAGA]) as rt:
        for saga_id in ["first", *acknowledged]:
            assert rt.run(saga_id).result(WAIT).status is sa.SagaStatus.COMPLETED, saga_id
        done = rt.state("slow")
        assert sorted(done) == sorted(
            f"{s}/{step}" for s in ["first", *acknowledged] for step in "ab"
        )


def test_a_script_with_an_in_memory_runtime_and_no_close_exits(tmp_path: Path) -> None:
    acknowledged = _run_script(tmp_path, "memory")
    assert len(acknowledged) == 39


def test_closing_at_exit_leaves_a_closed_runtime_closed() -> None:
    """The exit hook holds runtimes weakly and skips those already closed."""
    rt = sa.Runtime.in_memory(participants=[Slow()])
    rt.close()
    from sagactor import forgotten

    assert rt.engine not in forgotten.OPEN
    forgotten.close_forgotten()  # nothing open: nothing happens
    with pytest.raises(sa.RuntimeClosed):
        rt.start(SAGA, Order(1))
