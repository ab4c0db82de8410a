"""The harness of the ``kill -9`` tests: a child process that is killed at a moment it names.

A test module doubles as the child's script (``python -m tests.<module> DB``): the child opens
the journal, starts its sagas, prints a line per thing the parent must know (an id whose start
returned, say) and then a ready line, and waits. The parent reads up to the ready line and
kills the child with SIGKILL, as a power cut or the OOM killer would: no ``finally``, no
``close``, no flush beyond what the journal made durable. The parent then reopens the journal
and checks what survived.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import NoReturn

__all__ = ["ROOT", "run_until_killed", "wait_to_be_killed"]

ROOT = Path(__file__).resolve().parent.parent


def run_until_killed(module: str, path: Path, ready: str) -> list[str]:
    """Run ``python -m module path``; once it prints ``ready``, kill it with SIGKILL.

    Returns the lines it printed before ``ready``. Fails if the child ended before it was
    ready, or was not alive to be killed (then it would not have been killed mid-work).
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == ready:
                break
            lines.append(line.strip())
        else:
            raise AssertionError(f"{module} ended before it printed {ready!r}: {lines}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, f"{module} exited by itself ({proc.returncode})"
    return lines


def wait_to_be_killed(ready: str) -> NoReturn:
    """The child's end: say ``ready``, then wait for the parent's SIGKILL."""
    print(ready, flush=True)
    threading.Event().wait()
    raise AssertionError("an Event nobody sets was set")
