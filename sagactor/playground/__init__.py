"""The playground: a REPL (and script runner) to run, break, crash and inspect sagas.

Run ``sagactor play`` (or ``python -m sagactor.playground``); see :mod:`.cli` for the options
and ``help`` inside for the commands. The renderers (:mod:`.render`, :mod:`.mermaid`) are pure
functions usable on their own, e.g. ``render.timeline(id, rt.history(id), saga)``.
"""

from .cli import main

__all__ = ["main"]
