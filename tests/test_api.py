"""The public surface: what ``import sagactor`` offers, and the shape of its error tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import sagactor as sa
from sagactor import errors


def test_every_public_name_exists_and_all_is_sorted() -> None:
    assert sa.__all__ == sorted(sa.__all__)
    assert len(set(sa.__all__)) == len(sa.__all__)
    missing = [name for name in sa.__all__ if not hasattr(sa, name)]
    assert missing == []


def test_the_public_api_holds_the_core_names() -> None:
    core = {
        "Runtime",
        "Saga",
        "Step",
        "RetryPolicy",
        "Participant",
        "StepContext",
        "action",
        "compensation",
        "evolve",
        "on",
        "Fault",
        "Outcome",
        "SagaStatus",
        "StepFailed",
        "SagactorError",
    }
    assert core <= set(sa.__all__)
    assert isinstance(sa.__version__, str)
    assert sa.__version__


def test_every_error_the_package_defines_is_exported() -> None:
    assert set(errors.__all__) <= set(sa.__all__)
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
        if value.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in sa.__all__
        if inspect.isclass(getattr(sa, n)) and issubclass(getattr(sa, n), BaseException)
    ],
)
def test_errors_subclass_sagactor_error(name: str) -> None:
    error = getattr(sa, name)
    if name == "SimulatedCrash":
        # A simulated kill -9 must get past any `except Exception` (and any `except
        # SagactorError`) in user code.
        assert not issubclass(error, Exception)
    else:
        assert issubclass(error, sa.SagactorError)


def test_errors_also_subclass_the_builtin_they_resemble() -> None:
    assert issubclass(sa.DefinitionError, ValueError)
    assert issubclass(sa.UnknownParticipant, sa.DefinitionError)
    assert issubclass(sa.PayloadError, TypeError)
    assert issubclass(sa.SagaTimeout, TimeoutError)
    assert issubclass(sa.UnknownSaga, KeyError)
    for journal_error in (sa.JournalLocked, sa.JournalCorrupt, sa.JournalWriteError):
        assert issubclass(journal_error, sa.JournalError)


def test_error_messages_name_what_went_wrong() -> None:
    error = sa.DefinitionError("order", "needs a compensation", step="charge")
    assert str(error) == "saga 'order', step 'charge': needs a compensation"
    assert (error.saga, error.step, error.problem) == ("order", "charge", "needs a compensation")
    assert str(sa.UnknownSaga("abc")) == "no saga with id 'abc'"
    assert "abc" in str(sa.SagaIdConflict("abc", "with a different input"))
    payload = sa.PayloadError("the saga input", TypeError("nope"), saga="order", step="charge")
    assert str(payload) == "saga 'order', step 'charge': the saga input cannot be encoded: nope"


def test_every_module_exports_what_its_all_names() -> None:
    broken: list[str] = []
    for info in pkgutil.walk_packages(sa.__path__, "sagactor."):
        if info.name.endswith(".__main__"):
            continue  # running it is its point; importing it is not meant to be safe
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", [])
        broken += [f"{info.name}.{name}" for name in names if not hasattr(module, name)]
    assert broken == []
