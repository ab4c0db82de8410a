"""The package stays layered: imports go down the layer order, never round in a cycle.

Why: a layer that imports a higher one cannot be read, tested or replaced on its own, and an
import cycle makes the load order (and so what works) depend on who imports first. The layers
(DESIGN.md, section 2), from the bottom:

    0 vocabulary   errors, messages, actor_messages, names, crashpoints
    1 sagas        definitions, the pure state machine, the folds, the workflow graph
    2 persistence  journals and recovery's reads
    3 actors       participants, hosts, the drivers (coordinator, dispatcher), timers, portal
    4 engine       engine, catalog, quarantine, history, and both faces over the engine:
                   runtime and handles (sync), aio (async)
    5 users        playground, testing, examples, and the package itself

A module may import its own layer and the layers below. Every import counts: at module level,
inside a function, and under ``if TYPE_CHECKING:`` (a type is a dependency too). The async face
sits in the engine's layer, not above it: ``Runtime.astart`` and ``await run`` are methods of
the sync face's classes, so those reach ``aio``; ``aio`` imports only the engine (no cycle).
Allow-lists for violations, cycles and unlisted names are kept, and empty: an entry needs the
lead's word. An entry that no longer happens fails the test too.

The same file checks ``__all__``: every name it lists exists, and every public name that
``sagactor/__init__.py`` brings in is listed. And it holds module size: no module of the
package over :data:`MAX_LINES` lines, except those in :data:`LONG_MODULES`, each with its
reason.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sagactor"

LAYERS: list[tuple[str, ...]] = [
    (
        "sagactor.errors",
        "sagactor.messages",
        "sagactor.actor_messages",
        "sagactor.crashpoints",
        "sagactor.names",
        "sagactor.observe",
        "sagactor.clock",
        "sagactor.codec",
    ),
    ("sagactor.sagas",),
    ("sagactor.persistence",),
    ("sagactor.actors",),
    (
        "sagactor.engine",
        "sagactor.forgotten",
        "sagactor.drills",
        "sagactor.async_face",
        "sagactor.inspection",
        "sagactor.catalog",
        "sagactor.quarantine",
        "sagactor.dead_letters",
        "sagactor.recovering",
        "sagactor.history",
        "sagactor.aio",
        "sagactor.handles",
        "sagactor.retention",
        "sagactor.operations",
        "sagactor.forks",
        "sagactor.signals",
        "sagactor.runtime",
        "sagactor.cluster",
    ),
    ("sagactor.otel", "sagactor.playground", "sagactor.testing", "sagactor.examples", "sagactor"),
]
"""Module prefixes per layer, bottom first; the longest matching prefix decides."""

# (module, imported module) pairs allowed to go up the layer order; add nothing here without
# the lead's word.
KNOWN_UPWARD_IMPORTS: set[tuple[str, str]] = set()

# Import edges allowed on a cycle, as (module, imported module); an edge on a cycle that is not
# listed here is a new cycle.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()

# Public top-level definitions allowed outside their module's __all__: (module, name).
KNOWN_UNLISTED: set[tuple[str, str]] = set()


@dataclass(frozen=True, slots=True)
class Import:
    module: str
    imported: str
    line: int
    where: str  # "module", "function" or "type-checking"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, where: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, where
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), "type-checking")
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), where)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, "function" if where == "module" else where)
        else:
            yield from _walk(child, where)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The sagactor modules that ``name`` imports, resolved (``from p import m``: ``p.m``)."""
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node, where in _walk(ast.parse(path.read_text(), str(path)), "module"):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                if node.module:
                    base.append(node.module)
                source = ".".join(base)
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        for target in dict.fromkeys(targets):
            # `import sagactor.a.b` names the innermost module the project has.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("sagactor") and target != name:
                found.append(Import(name, target, node.lineno, where))
    return found


def import_graph() -> list[Import]:
    modules = all_modules()
    return [i for name, path in modules.items() for i in imports_of(name, path, modules)]


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return max(matches)[1]


def cycle_edges(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges that lie on some cycle: both ends in one strongly connected component."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    # Tarjan's algorithm, iterative (no recursion limit to think about).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    component: dict[str, int] = {}
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component[member] = index[node]
                        if member == node:
                            break
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return {(a, b) for a, b in edges if component[a] == component[b]}


def _listing(pairs: set[tuple[str, str]], imports: list[Import]) -> str:
    where = {(i.module, i.imported): i for i in imports}
    return "\n".join(
        f'    ("{a}", "{b}"),  # line {where[a, b].line}, {where[a, b].where}'
        if (a, b) in where
        else f'    ("{a}", "{b}"),'
        for a, b in sorted(pairs)
    )


def test_every_module_has_a_layer() -> None:
    for module in all_modules():
        layer_of(module)


def test_imports_go_down_the_layers() -> None:
    imports = import_graph()
    upward = {(i.module, i.imported) for i in imports if layer_of(i.imported) > layer_of(i.module)}
    new = upward - KNOWN_UPWARD_IMPORTS
    gone = KNOWN_UPWARD_IMPORTS - upward
    assert not new, f"imports against the layer order:\n{_listing(new, imports)}"
    assert not gone, f"fixed, so remove them from KNOWN_UPWARD_IMPORTS:\n{_listing(gone, imports)}"


def test_no_new_import_cycle() -> None:
    imports = import_graph()
    on_cycles = cycle_edges({(i.module, i.imported) for i in imports})
    new = on_cycles - KNOWN_CYCLE_EDGES
    gone = KNOWN_CYCLE_EDGES - on_cycles
    assert not new, f"import edges on a new cycle:\n{_listing(new, imports)}"
    assert not gone, (
        f"no longer on a cycle, so remove from KNOWN_CYCLE_EDGES:\n{_listing(gone, imports)}"
    )


def test_the_checks_see_what_they_must() -> None:
    """The graph is not empty, and a known shape is found: a test that cannot fail is a defect."""
    imports = import_graph()
    edges = {(i.module, i.imported) for i in imports}
    assert ("sagactor", "sagactor.runtime") in edges  # `from .runtime import ...` in __init__
    assert ("sagactor.playground.shell", "sagactor.playground.commands") in edges
    assert cycle_edges({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == {
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
    }
    assert layer_of("sagactor.sagas.machine") < layer_of("sagactor.persistence.sqlite")
    assert layer_of("sagactor.playground.render.basics") == layer_of("sagactor")


def test_playground_has_no_cycle() -> None:
    """The playground's own modules import each other one way (its split relies on it)."""
    imports = import_graph()
    inside = {
        (i.module, i.imported)
        for i in imports
        if i.module.startswith("sagactor.playground")
        and i.imported.startswith("sagactor.playground")
    }
    assert not cycle_edges(inside), _listing(cycle_edges(inside), imports)


# -- __all__ ---------------------------------------------------------------------------------------


def _declared_all(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text()).body:
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "__all__":
            assert isinstance(value, ast.List | ast.Tuple), f"{path}: __all__ is not a literal"
            return [ast.literal_eval(e) for e in value.elts]
    return None


MODULES_WITH_ALL = sorted(
    name for name, path in all_modules().items() if _declared_all(path) is not None
)


@pytest.mark.parametrize("name", MODULES_WITH_ALL)
def test_every_name_in_all_exists(name: str) -> None:
    declared = _declared_all(all_modules()[name]) or []
    module = importlib.import_module(name)
    missing = [n for n in declared if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names it does not define: {missing}"
    assert len(set(declared)) == len(declared), f"{name}.__all__ repeats a name"


def test_the_package_exports_every_public_name() -> None:
    import sagactor

    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    brought_in = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    public = {n for n in brought_in if not n.startswith("_")}
    assert public, "sagactor/__init__.py imports nothing?"
    assert public == set(sagactor.__all__), (
        f"imported but not in __all__: {sorted(public - set(sagactor.__all__))}; "
        f"in __all__ but not imported: {sorted(set(sagactor.__all__) - public)}"
    )


def test_every_module_declares_all() -> None:
    """A module with code says what it exports (``__main__`` and empty packages aside)."""
    lacking = [
        name
        for name, path in all_modules().items()
        if path.read_text().strip() and path.name != "__main__.py" and _declared_all(path) is None
    ]
    assert not lacking, f"modules without __all__: {lacking}"


def test_modules_with_all_list_their_public_definitions() -> None:
    """What a module defines at top level without a leading underscore is in its ``__all__``."""
    unlisted: set[tuple[str, str]] = set()
    for name in MODULES_WITH_ALL:
        path = all_modules()[name]
        declared = set(_declared_all(path) or [])
        defined = {
            node.name
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        unlisted |= {(name, n) for n in defined - declared if not n.startswith("_")}
    new, gone = unlisted - KNOWN_UNLISTED, KNOWN_UNLISTED - unlisted
    assert not new, f"public definitions missing from __all__: {sorted(new)}"
    assert not gone, f"listed now, so remove them from KNOWN_UNLISTED: {sorted(gone)}"


# -- module size -----------------------------------------------------------------------------------

MAX_LINES = 400
"""A room a newcomer reads in one sitting (pykka's modules stay under it)."""

LONG_MODULES: dict[str, str] = {
    "sagactor.playground.session": "the playground's session state and its printing helpers; "
    "split with the next playground change",
    "sagactor.examples.shop": "the example domain read top to bottom by the docs and the "
    "playground: one file on purpose",
    "sagactor.messages": "the journal's vocabulary: every stored saga event and the union that "
    "decodes them, in one place on purpose (it is the stored schema)",
}
"""Modules allowed over :data:`MAX_LINES`, each with the reason."""


def test_no_module_is_too_long() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in all_modules().items()}
    long = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in LONG_MODULES}
    assert not long, (
        f"modules over {MAX_LINES} lines (split them, or say why in LONG_MODULES): {long}"
    )
    short = sorted(name for name in LONG_MODULES if sizes.get(name, 0) <= MAX_LINES)
    assert not short, f"no longer long (or gone), so remove from LONG_MODULES: {short}"
