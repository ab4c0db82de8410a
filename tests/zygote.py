"""Child processes forked from a zygote that imported their modules once.

The kill soaks start a child process per kill; ``python -m`` would import sagactor (and
psycopg) again for each, 0.5-2.5 s of every kill on a busy machine. A zygote imports them
once (``python -m tests.zygote FD MODULE [PRELOAD...]``) and forks a child per
:meth:`Zygote.start`. Each child is still a process of its own: it opens its journal itself,
writes to its own stdout and stderr (pipes read here, as with ``subprocess.Popen``) and is
killed with a real signal.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path
from typing import TextIO

__all__ = ["Forked", "Zygote"]

ROOT = Path(__file__).resolve().parent.parent


class Forked:
    """A forked child: the part of ``subprocess.Popen`` the soaks use."""

    def __init__(self, pid: int, stdout: TextIO, stderr: TextIO) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        try:  # signals through a pidfd never reach another process that reuses the pid
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None  # already gone

    def poll(self) -> int | None:
        """None while it lives; else -1 (its exit status went to the zygote)."""
        if self._pidfd is None:
            return -1
        readable, _, _ = select.select([self._pidfd], [], [], 0)
        return -1 if readable else None

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            assert self._pidfd is not None
            signal.pidfd_send_signal(self._pidfd, sig)

    def wait(self, timeout: float) -> int:
        if self._pidfd is not None:
            readable, _, _ = select.select([self._pidfd], [], [], timeout)
            if not readable:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            os.close(self._pidfd)
            self._pidfd = None
        return -1


class Zygote:
    """A process that imported ``module`` (and ``preload``, modules its children import later)
    and forks a child running one of ``module``'s functions."""

    def __init__(self, module: str, *, preload: tuple[str, ...] = ()) -> None:
        self._sock, theirs = socket.socketpair()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.zygote", str(theirs.fileno()), module, *preload],
                pass_fds=[theirs.fileno()],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )

    def start(self, function: str, *args: object) -> Forked:
        """A child running ``module.function(*args)``; its stdout and stderr piped here."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            request = json.dumps([function, args]).encode()
            socket.send_fds(self._sock, [request], [out_write, err_write])
        finally:
            os.close(out_write)  # the child has its own copies: EOF once it is dead
            os.close(err_write)
        reply = b""
        while not reply.endswith(b"\n"):
            piece = self._sock.recv(64)
            assert piece, "the zygote died"
            reply += piece
        return Forked(int(reply), os.fdopen(out_read, "r"), os.fdopen(err_read, "r"))

    def close(self) -> None:
        self._sock.close()  # the zygote reads EOF and exits
        self._process.wait(30)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(fd: int, module: str, *preload: str) -> None:
    target = importlib.import_module(module)
    for name in preload:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    with socket.socket(fileno=fd) as sock:
        while True:
            request, fds, _, _ = socket.recv_fds(sock, 65536, 2)
            if not request:
                return  # the parent is done
            function, args = json.loads(request)
            pid = os.fork()
            if pid == 0:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.dup2(fds[0], 1)
                os.dup2(fds[1], 2)
                for piped in fds:
                    os.close(piped)
                code = 0
                try:
                    getattr(target, function)(*args)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            for piped in fds:
                os.close(piped)
            sock.sendall(f"{pid}\n".encode())


if __name__ == "__main__":
    serve(int(sys.argv[1]), *sys.argv[2:])
