"""Several versions of one saga at once: the definitions a runtime knows, by name and version.

A saga records the name and version it started under (``SagaStarted``). New starts by name use
the latest version; an in-flight saga resumes under exactly the version it started with, so
``order@1`` instances finish on version 1 while new ones run version 2. Reading a finished saga
needs no definition at all (see :func:`~sagactor.sagas.fold.summarize`).

As a :class:`~collections.abc.Mapping`, :class:`Definitions` is "name -> latest version", which
is what most readers want; :meth:`Definitions.exact` and :meth:`Definitions.every` reach the
others. Written only from the thread that registers definitions; every write replaces one
dict entry, so readers on other threads never see a half-made table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ..errors import DefinitionError
from .definition import Choreography, Saga

__all__ = ["Definitions", "pick"]

Definition = Saga | Choreography


class Definitions(Mapping[str, Definition]):
    """Saga definitions: as a mapping, each name's latest version; every version kept."""

    def __init__(self, definitions: Iterable[Definition] = ()) -> None:
        self._every: dict[tuple[str, int], Definition] = {}
        self._latest: dict[str, Definition] = {}
        for definition in definitions:
            self.add(definition)

    def add(self, definition: Definition) -> None:
        """Remember ``definition`` beside the other versions of its name.

        Raises:
            DefinitionError: Another definition with the same name and version is registered
                (a changed definition needs a new version).
        """
        key = (definition.name, definition.version)
        known = self._every.get(key)
        if known is not None and known != definition:
            raise DefinitionError(
                definition.name,
                f"another definition with version {definition.version} is registered; "
                "bump the version",
            )
        self._every[key] = definition
        latest = self._latest.get(definition.name)
        if latest is None or latest.version <= definition.version:
            self._latest[definition.name] = definition

    def exact(self, name: str, version: int) -> Definition | None:
        """The definition of ``name`` at ``version``, if registered."""
        return self._every.get((name, version))

    def versions(self, name: str) -> list[int]:
        """The registered versions of ``name``, oldest first."""
        return sorted(v for n, v in self._every if n == name)

    def every(self) -> list[Definition]:
        """Every registered definition, by name then version."""
        return [self._every[key] for key in sorted(self._every)]

    def copy(self) -> Definitions:
        return Definitions(self.every())

    def __getitem__(self, name: str) -> Definition:
        return self._latest[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._latest))

    def __len__(self) -> int:
        return len(self._latest)

    def __repr__(self) -> str:
        return f"Definitions({', '.join(d.key for d in self.every())})"


def pick(definitions: Mapping[str, Definition], name: str, version: int) -> Definition | str:
    """The definition a saga started under ``name``@``version`` resumes with, or why none.

    A plain mapping (name -> definition) holds one version per name; a :class:`Definitions`
    holds them all.
    """
    if isinstance(definitions, Definitions):
        found = definitions.exact(name, version)
        known = definitions.versions(name)
    else:
        single = definitions.get(name)
        found = single if single is not None and single.version == version else None
        known = [] if single is None else [single.version]
    if found is not None:
        return found
    if not known:
        return ""
    listed = ", ".join(str(v) for v in known)
    return (
        f"started under {name!r} version {version}, "
        f"registered version{'s are' if len(known) > 1 else ' is'} {listed}"
    )
