"""What the playground runs over: participants, saga definitions and default saga inputs.

By default the example shop. ``--module`` names a user's module (a dotted import name, or a
path to a ``.py`` file) that follows this convention:

* ``participants``: a function returning a list of fresh :class:`~sagactor.Participant`
  objects (called again at every reopen, so each runtime gets its own), or a list of them.
  Without it, the module's Participant instances are used, or else the Participant subclasses
  it defines, each built with no arguments.
* ``sagas``: a list of :class:`~sagactor.Saga` (or :class:`~sagactor.Choreography`)
  definitions. Without it, every such object defined at module level is used.
* ``defaults`` (optional): ``{saga name: {field: value}}``, default input fields for
  ``start``. A ``str`` field named ``id`` that is not given is filled with the saga id.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from ..actors.participant import Participant
from ..sagas.definition import Choreography, Saga

__all__ = [
    "Definition",
    "Domain",
    "DomainError",
    "InputError",
    "build_input",
    "input_fields",
    "load_domain",
    "shop_domain",
    "start_type",
]

Definition = Saga | Choreography
"""A step-list saga (orchestrated, or choreographed from its steps), or a native choreography."""


class DomainError(Exception):
    """The module cannot be used as a playground domain."""


class InputError(ValueError):
    """A saga input cannot be built from the given fields."""


@dataclass
class Domain:
    name: str
    make_participants: Callable[[], list[Participant[Any]]]
    sagas: list[Definition]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)

    def saga(self, name: str) -> Definition | None:
        """The latest version of ``name``, or exactly ``name@version``."""
        found = [s for s in self.sagas if name in (s.name, s.key)]
        return max(found, key=lambda s: s.version, default=None)


def shop_domain() -> Domain:
    from ..examples import shop

    order = {"customer": "alice", "sku": "sku-1", "qty": 1, "amount": 100}
    sagas: list[Definition] = [shop.order_saga]
    native = getattr(shop, "order_choreography", None)
    if isinstance(native, Choreography):
        sagas.append(native)
    return Domain(
        name="shop",
        make_participants=shop.make_shop,
        sagas=sagas,
        defaults={s.name: dict(order) for s in sagas},
    )


def load_domain(spec: str | None) -> Domain:
    """The shop (``spec`` None), or the domain a user's module defines."""
    if spec is None:
        return shop_domain()
    module = _import(spec)
    participants = _participants(module)
    sagas = _sagas(module)
    defaults = getattr(module, "defaults", {})
    if not isinstance(defaults, Mapping):
        raise DomainError(f"{spec}: `defaults` must be a dict of saga name to fields")
    return Domain(
        name=module.__name__,
        make_participants=participants,
        sagas=sagas,
        defaults={str(k): dict(v) for k, v in defaults.items()},
    )


def _import(spec: str) -> ModuleType:
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise DomainError(f"no such file: {spec}")
        name = "sagactor_playground_user_" + path.stem.replace("-", "_")
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise DomainError(f"cannot import {spec}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and typing look the module up by name
        try:
            loader_spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise DomainError(
                f"importing {spec} failed: {type(error).__name__}: {error}"
            ) from error
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as error:
        raise DomainError(f"cannot import module {spec!r}: {error}") from error
    except Exception as error:
        raise DomainError(f"importing {spec} failed: {type(error).__name__}: {error}") from error


def _participants(module: ModuleType) -> Callable[[], list[Participant[Any]]]:
    found = getattr(module, "participants", None)
    where = module.__name__
    if callable(found):
        factory: Callable[[], Any] = found

        def make() -> list[Participant[Any]]:
            return _checked(factory(), where)

        make()  # fail now, not at the first reopen
        return make
    if found is not None:
        fixed = _checked(found, where)
        return lambda: fixed
    members = vars(module).values()
    instances = [v for v in members if isinstance(v, Participant)]
    if instances:
        return lambda: list(instances)
    classes = [
        v
        for v in members
        if inspect.isclass(v)
        and issubclass(v, Participant)
        and v is not Participant
        and v.__module__ == module.__name__
    ]
    if classes:
        try:
            [cls() for cls in classes]
        except TypeError as error:
            raise DomainError(
                f"{where}: cannot build its participants with no arguments ({error}); "
                "define participants() returning them"
            ) from error
        return lambda: [cls() for cls in classes]
    raise DomainError(f"{where} defines no participants: add `def participants(): return [...]`")


def _checked(value: Any, where: str) -> list[Participant[Any]]:
    items = list(value) if isinstance(value, list | tuple) else None
    if not items or not all(isinstance(p, Participant) for p in items):
        raise DomainError(f"{where}: participants must be a non-empty list of Participant objects")
    return items


def _sagas(module: ModuleType) -> list[Definition]:
    found = getattr(module, "sagas", None)
    if found is None:
        found = [v for v in vars(module).values() if isinstance(v, Saga | Choreography)]
    if not isinstance(found, list | tuple) or not found:
        raise DomainError(f"{module.__name__} defines no sagas: add `sagas = [my_saga, ...]`")
    if not all(isinstance(s, Saga | Choreography) for s in found):
        raise DomainError(
            f"{module.__name__}: sagas must be a list of Saga or Choreography definitions"
        )
    return list(found)


# -- saga inputs ---------------------------------------------------------------------------------


def start_type(definition: Definition) -> type[Any] | None:
    """What ``start`` takes: a saga's input type, a native choreography's start event."""
    if isinstance(definition, Choreography):
        return definition.start
    return definition.input_type


def _fields_of(kind: Any) -> dict[str, tuple[bool, Any]]:
    """Field name -> (required, type) of a Struct or dataclass type; empty for others."""
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return {
            f.name: (
                f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT,
                f.type,
            )
            for f in msgspec.structs.fields(kind)
        }
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        return {
            f.name: (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                hints.get(f.name, Any),
            )
            for f in dataclasses.fields(kind)
        }
    return {}


def _hints(kind: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(kind)
    except Exception:  # noqa: BLE001 - unresolvable annotations: treat the fields as Any
        return {}


def _wrapper(kind: Any) -> tuple[str, Any] | None:
    """``(field, inner type)`` when ``kind`` only wraps one record (``OrderCreated(order)``)."""
    fields = _fields_of(kind)
    if len(fields) != 1:
        return None
    name, (_, inner) = next(iter(fields.items()))
    return (name, inner) if _fields_of(inner) else None


def input_fields(definition: Definition) -> dict[str, bool]:
    """The input's field names (the wrapped record's, for a one-field event), each with
    whether it is required (no default)."""
    kind = start_type(definition)
    wrapped = _wrapper(kind)
    fields = _fields_of(wrapped[1] if wrapped else kind)
    return {name: required for name, (required, _) in fields.items()}


def _guess(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def build_input(
    definition: Definition,
    given: Mapping[str, str],
    defaults: Mapping[str, Any],
    *,
    saga_id: str,
    index: int,
) -> Any:
    """The input of one saga from ``field=value`` strings over the defaults.

    ``{i}`` in a value becomes the saga's index in its batch (from 1), ``{id}`` its id. For a
    start event that wraps one record (``OrderCreated(order: Order)``), the fields are the
    record's.
    """
    values = {k: v.replace("{i}", str(index)).replace("{id}", saga_id) for k, v in given.items()}
    kind = start_type(definition)
    wrapped = _wrapper(kind)
    if kind is not None and wrapped is not None and wrapped[0] not in values:
        inner = _build(wrapped[1], values, defaults, saga_id)
        return kind(**{wrapped[0]: inner})
    return _build(kind, values, defaults, saga_id)


def _build(kind: Any, values: Mapping[str, str], defaults: Mapping[str, Any], saga_id: str) -> Any:
    fields = _fields_of(kind)
    name = getattr(kind, "__name__", "the input")
    if not fields:
        merged = {**defaults, **{k: _guess(v) for k, v in values.items()}}
        if kind is None:
            return merged
        try:
            return msgspec.convert(merged, kind, strict=False)
        except msgspec.ValidationError as error:
            raise InputError(f"bad input for {name}: {error}") from error
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise InputError(f"{name} has no field {unknown[0]!r} (fields: {', '.join(fields)})")
    merged = {**{k: v for k, v in defaults.items() if k in fields}, **values}
    if "id" in fields and "id" not in merged:
        merged["id"] = saga_id
    missing = [f for f, (required, _) in fields.items() if required and f not in merged]
    if missing:
        raise InputError(
            f"{name} needs {', '.join(f'{m}=...' for m in missing)} (fields: {', '.join(fields)})"
        )
    try:
        return msgspec.convert(merged, kind, strict=False)
    except msgspec.ValidationError as error:
        raise InputError(f"bad input for {name}: {error}") from error
