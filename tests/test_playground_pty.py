"""The interactive playground in a real (pseudo-)terminal, driven with pexpect.

prompt_toolkit draws the prompt, the completion menu and the typed text with escape codes, so
these tests wait for what is stable on screen: menu entries, and the commands' own output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return tmp_path / "history"


@pytest.fixture
def repl(tmp_path: Path, history: Path) -> Iterator[pexpect.spawn]:
    env = dict(
        os.environ,
        TERM="xterm",
        PROMPT_TOOLKIT_NO_CPR="1",  # pexpect never answers cursor-position requests
        SAGACTOR_HISTORY=str(history),
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "sagactor.playground", str(tmp_path / "shop.db")],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        dimensions=(40, 160),
        timeout=20,
    )
    try:
        child.expect("type `help` for the commands")
        child.expect("sagactor>")
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)
        child.close()


def test_typing_completion_crash_and_recovery(repl: pexpect.spawn, history: Path) -> None:
    # Tab completion of a command: `sta` offers start, state and stats; Tab takes the first.
    repl.send("sta")
    repl.expect("start N sagas")  # the completion menu, with each command's summary
    repl.expect("a participant's current state")
    repl.send("\t")
    repl.send("\r")
    repl.expect(r"started 1 order saga \(orchestration\): order-1")
    repl.expect("order-1  completed")

    # Bad input gets a one-line answer with a suggestion, and the REPL goes on.
    repl.sendline("strat")
    repl.expect(r"error: unknown command 'strat' \(did you mean 'start'\?\)")
    repl.sendline("show order-77")
    repl.expect(r"error: no saga 'order-77' \(did you mean 'order-1'\?\)")

    # Completion of arguments: participants, then the fault itself typed out.
    repl.send("fault pay")
    repl.expect("payment")
    repl.send("\t")
    repl.send(" fail once\r")
    repl.expect(r"fault on payment\.charge: fail \(1 more time\(s\)\)")
    repl.sendline("start")
    repl.expect(r"order-2  compensated: step 'charge_payment' failed: injected failure")

    # A crash at a named point, then a recovery that resumes the in-flight saga.
    repl.send("crash at bef")
    repl.expect("before-dispatch")  # the menu lists the crash points
    repl.send("\x15")  # Ctrl-U: clear the line, type it whole
    repl.sendline("crash at before-reply 2")
    repl.expect("armed: the runtime dies at the 2nd pass through before-reply")
    repl.sendline("start")
    repl.expect(r"the runtime crashed at before-reply \(a simulated kill -9\) with 1 saga\(s\)")
    repl.expect(r"sagactor \(crashed\)>")
    repl.sendline("sagas")
    repl.expect("type `recover` to reopen the journal")
    repl.sendline("recover")
    repl.expect(r"resumed 1 in-flight saga\(s\): order-3")
    repl.expect("order-3  completed")
    repl.sendline("show 3")
    repl.expect("saga order-3: order v1, orchestration, completed")
    repl.expect("`recover` reopened the journal")

    # Ctrl-C at the prompt drops the line, not the session; quit leaves with status 0.
    repl.send("garbage")
    repl.send("\x03")
    repl.sendline("sagas")
    repl.expect(r"3 saga\(s\): 2 completed, 1 compensated")
    repl.sendline("quit")
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0
    kept = history.read_text()
    assert "+crash at before-reply 2" in kept
    assert "+recover" in kept


def test_python_console_and_ctrl_d(repl: pexpect.spawn) -> None:
    repl.sendline("py 6 * 7")
    repl.expect("42")
    repl.sendline('py rt.state("inventory").stock["sku-1"]')
    repl.expect("1000000")
    # `py` alone opens a Python console with the runtime in scope; exit() comes back.
    repl.sendline("py")
    repl.expect(">>> ")
    repl.sendline("rt.participants")
    repl.expect(r"\['inventory', 'notification', 'payment', 'shipping'\]")
    repl.sendline("exit()")
    repl.expect("back in the playground")
    repl.sendline("start")
    repl.expect("order-1  completed")
    repl.send("\x04")  # Ctrl-D on an empty line
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0
