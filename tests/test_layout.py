"""The code's shape, checked: the import graph between packages points one way, no module
imports itself through others (type-checking imports too), and no private function is left
without a caller (issue 30 found one: dead code is where a second way of doing a thing
hides)."""

from __future__ import annotations

import ast
from pathlib import Path

import prepush

ROOT = Path(prepush.__file__).parent

# Package -> the prepush packages it may import. A corte's walk goes down this list and never
# comes back up: the contract and the runner know no transport, the transports know no
# protocol, the protocol knows no command line.
MAY_IMPORT = {
    "delivery": {"exceptions", "package"},
    "transports": {"delivery", "exceptions", "package", "settings"},
    # ops (status) for publish --watch's metrics; ops itself never imports publish.
    "publish": {"delivery", "transports", "ops", "exceptions", "package", "settings", "ledger"},
    "pull": {
        "delivery",
        "publish",
        "transports",
        "ops",
        "exceptions",
        "package",
        "ledger",
        "settings",
    },
}


def modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in ROOT.rglob("*.py")}


def package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return parts[0].removesuffix(".py")


def imported(tree: ast.Module) -> set[str]:
    """The prepush packages a module imports, at any level (type-checking imports too)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "prepush" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_each_package_imports_only_what_lies_below_it() -> None:
    wrong = []
    for path, tree in modules().items():
        package = package_of(path)
        allowed = MAY_IMPORT.get(package)
        if allowed is None:
            continue
        for other in imported(tree) - allowed - {package}:
            wrong.append(f"{path.relative_to(ROOT)} importa prepush.{other}")
    assert wrong == []


def test_the_core_never_imports_click() -> None:
    users = [
        str(path.relative_to(ROOT))
        for path, tree in modules().items()
        if path.relative_to(ROOT) != Path("__main__.py")
        and package_of(path) != "cli"
        and any(
            (isinstance(n, ast.Import) and any(a.name == "click" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and n.module == "click")
            for n in ast.walk(tree)
        )
    ]
    assert users == []


def names_used(tree: ast.Module) -> set[str]:
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
    return used


def test_every_private_function_has_a_caller() -> None:
    """Used in its own module, or imported by name from another (a test's double counts)."""
    trees = modules()
    imported_by_name = {
        alias.name
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    unused = [
        f"{path.relative_to(ROOT)}:{node.name}"
        for path, tree in trees.items()
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("_")
        and not node.name.startswith("__")
        and node.name not in names_used(tree)
        and node.name not in imported_by_name
    ]
    assert unused == []


def module_name(path: Path) -> str:
    parts = ("prepush", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.Module, known: set[str]) -> set[str]:
    """The prepush modules a module imports, at any level (type-checking imports too).
    ``from prepush.x import y`` names the module ``prepush.x.y`` when there is one."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & known


def cycle_in(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as the path that closes it, or [] when it has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        path.append(node)
        for other in sorted(graph[node]):
            if found := visit(other):
                return found
        path.pop()
        done.add(node)
        return []

    for node in sorted(graph):
        if found := visit(node):
            return found
    return []


def test_no_module_imports_itself_through_others() -> None:
    trees = {module_name(path): tree for path, tree in modules().items()}
    known = set(trees)
    graph = {name: imported_modules(tree, known) - {name} for name, tree in trees.items()}
    assert cycle_in(graph) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": set()}) == []
