"""``sagactor inspect DB list|show|resolve|prune`` and ``--json``, ``sagactor --version``: run
through the command's ``main`` on a journal the test's own participants wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sagactor as sa
from sagactor.playground.cli import main

from .opsdomain import ORDER, WAIT, Courier, Order, participants


def test_list_show_resolve_prune_from_the_shell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "j.db"
    Courier.broken = True
    try:
        with sa.Runtime.open(path, participants=participants(), sagas=[ORDER]) as rt:
            assert rt.start(ORDER, Order("a", 1), saga_id="41").result(WAIT).ok
            stuck = rt.start(ORDER, Order("b", 2, fail_at="charge"), saga_id="42").result(WAIT)
            assert stuck.status == "stuck"
    finally:
        Courier.broken = False
    db = str(path)
    assert main(["inspect", db, "list", "--status", "stuck", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed["rows"]] == ["42"]
    assert listed["cursor"] is None
    assert main(["inspect", db, "--json", "show", "42"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["saga"]["status"] == "stuck"
    assert shown["events"][-1]["type"] == "SagaStuck"
    assert main(["inspect", db, "show", "nope"]) == 1
    assert "no saga with id 'nope'" in capsys.readouterr().err
    module = tmp_path / "shopmod.py"
    module.write_text("from tests.opsdomain import ORDER, participants\nsagas = [ORDER]\n")
    args = ["inspect", db, "resolve", "42", "reserve", "-m", str(module)]
    assert main(args) == 1
    assert "stuck compensating 'ship', not 'reserve'" in capsys.readouterr().err
    args = ["inspect", db, "resolve", "42", "ship", "--note", "by phone", "-m", str(module)]
    assert main(args) == 0
    assert "StepResolved" in capsys.readouterr().out
    with sa.Runtime.open(path, participants=participants(), sagas=[ORDER]) as rt:
        assert rt.run("42").result(WAIT).status == "compensated"  # recovery carried it on
        assert rt.state("ledger").held == {"41/reserve": 1, "41/charge": 1}
    assert main(["inspect", db, "prune", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sagas"] == 2
    assert main(["inspect", db, "list"]) == 0
    assert "42  order v1  compensated" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sagactor {sa.__version__}"
