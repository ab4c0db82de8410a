"""Every Python example in the README and the docs runs, as written.

Why: an example that no longer runs teaches the wrong API, and nobody notices until a reader
copies it. Each page's ```python blocks run in order, in one namespace (a later block uses
what an earlier one defined), in a fresh temporary directory (so ``shop.db`` lands there).

A block that cannot run (a deliberately partial snippet) says so on the line just before its
fence, with a reason, as an HTML comment that the rendered page hides::

    <!-- not-run: a fragment of the class above -->

Such blocks are counted in ``NOT_RUN``, so that adding one is a visible decision.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import sagactor

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
PYTHON = ("python", "py")

NOT_RUN_BLOCKS: dict[str, int] = {}
"""Blocks marked not-run, per page (relative path): keep this short."""


@dataclass(frozen=True, slots=True)
class Block:
    page: Path
    line: int  # of the first code line, 1-based
    code: str
    not_run: str  # the reason, or "" for a block that runs


def blocks(page: Path) -> list[Block]:
    """The fenced ```python blocks of a Markdown page, dedented to their fence."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if (
                closing
                and not closing["info"]
                and closing["ticks"][0] == ticks[0]
                and len(closing["ticks"]) >= len(ticks)
            ):
                break
            body.append(lines[end].removeprefix(indent))
            end += 1
        if opening["info"].lower() in PYTHON:
            before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marker = NOT_RUN.match(before)
            found.append(
                Block(page, index + 2, "\n".join(body), marker["reason"] if marker else "")
            )
        index = end + 1
    return found


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_page_examples_run(
    page: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    if page.name == "postgres.md":  # its examples read the URL of a database from the environment
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pg_url"))
    found = blocks(page)
    module = types.ModuleType("docs_example_" + re.sub(r"\W", "_", _name(page)))
    module.__file__ = str(page)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    try:
        for block in found:
            if block.not_run:
                continue
            # Padding keeps the line numbers of a traceback those of the Markdown file.
            source = "\n" * (block.line - 1) + block.code
            try:
                exec(compile(source, str(page), "exec"), module.__dict__)
            except BaseException as error:
                output = capsys.readouterr().out
                raise AssertionError(
                    f"{_name(page)}, the block at line {block.line} failed: "
                    f"{type(error).__name__}: {error}\n--- its page printed ---\n{output}"
                ) from error
    finally:
        # A page that failed half-way may leave a runtime open: its threads must not linger.
        for value in list(module.__dict__.values()):
            if isinstance(value, sagactor.Runtime):
                value.close()


def test_not_run_blocks_are_few_and_counted() -> None:
    counted = {_name(page): n for page in PAGES if (n := sum(1 for b in blocks(page) if b.not_run))}
    assert counted == NOT_RUN_BLOCKS


def test_the_pages_have_examples() -> None:
    """The extraction sees the README's tour and a runnable example in the docs pages."""
    readme = blocks(ROOT / "README.md")
    assert len(readme) >= 2
    assert any("sa.Runtime.open(" in b.code for b in readme)
    docs = [p for p in PAGES if p.parent != ROOT]
    assert docs, "no docs/ pages found"
    assert sum(len(blocks(p)) for p in docs) >= 5


def test_the_api_reference_covers_the_public_api() -> None:
    """Each public name of ``sagactor`` has its entry (``::: sagactor.Name``) in the reference."""
    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: sagactor\.(\w+)$", reference, re.M))
    missing = sorted(set(sagactor.__all__) - documented)
    assert not missing, f"add to docs/reference.md: {missing}"


def test_blocks_parses_fences_markers_and_indentation(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n"
        "```python\n"
        "a = 1\n"
        "```\n"
        "```sh\n"
        "echo no\n"
        "```\n"
        "<!-- not-run: a fragment -->\n"
        "\n"
        "```py\n"
        "b = \n"
        "```\n"
        "- item\n"
        "\n"
        "    ```python\n"
        "    c = 3\n"
        "      d = 4\n"
        "    ```\n"
    )
    found = blocks(page)
    assert [(b.line, b.code, b.not_run) for b in found] == [
        (3, "a = 1", ""),
        (11, "b = ", "a fragment"),
        (16, "c = 3\n  d = 4", ""),
    ]
