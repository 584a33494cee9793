"""The code's shape, checked: the import graph between packages is the one docs/architecture.md
draws and points one way, no module is too long to read, no module
imports itself through others (type-checking imports too), and no private function is left
without a caller (issue 30 found one: dead code is where a second way of doing a thing
hides)."""

from __future__ import annotations

import ast
from pathlib import Path

import prepush

ROOT = Path(prepush.__file__).parent

# Package -> the prepush packages it imports, and the picture's order (top to bottom), as
# docs/architecture.md draws them: the page is the one place the import direction is written.
ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"
# Only transports/sftp/pump.py may be longer (docs/performance.md says why).
MAX_LINES = 800
LONG_ALLOWED = {Path("transports/sftp/pump.py")}


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


def documented_dependencies() -> dict[str, set[str]]:
    """docs/architecture.md's table: package -> the packages it imports."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text.split("<!-- dependencias -->")[1].split("<!-- /dependencias -->")[0]
    documented: dict[str, set[str]] = {}
    for row in table.strip().splitlines()[2:]:
        package, imports = (cell.strip() for cell in row.strip().strip("|").split("|"))
        documented[package.strip("`")] = {
            name.strip().strip("`") for name in imports.split(",") if name.strip() != "—"
        }
    return documented


def drawn_order() -> list[str]:
    """The packages in docs/architecture.md's picture, from the top down."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    picture = text.split("## El dibujo")[1].split("```")[1]
    return [line.split()[0] for line in picture.strip().splitlines()]


def real_dependencies() -> dict[str, set[str]]:
    real: dict[str, set[str]] = {}
    for path, tree in modules().items():
        package = package_of(path)
        if package != "__init__":
            real.setdefault(package, set()).update(imported(tree) - {package})
    return real


def test_the_architecture_page_lists_the_real_imports() -> None:
    assert documented_dependencies() == real_dependencies()


def test_the_architecture_picture_draws_every_import_downwards() -> None:
    order = drawn_order()
    assert sorted(order) == sorted(documented_dependencies())
    upwards = [
        f"{package} importa {other}, dibujado más arriba"
        for package, imports in documented_dependencies().items()
        for other in imports
        if order.index(other) < order.index(package)
    ]
    assert upwards == []


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {lines} líneas"
        for path in ROOT.rglob("*.py")
        if path.relative_to(ROOT) not in LONG_ALLOWED
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == []


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


def test_the_tests_are_laid_out_like_the_packages() -> None:
    tests = Path(__file__).parent
    folders = {
        path.name for path in tests.iterdir() if path.is_dir() and path.name != "__pycache__"
    }
    packages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    assert folders - {"support", "axe"} <= packages
    assert sorted(path.name for path in tests.glob("test_*.py")) == ["test_layout.py"]


def test_no_test_module_imports_another() -> None:
    tests = Path(__file__).parent
    test_modules = {path.stem for path in tests.rglob("test_*.py")}
    importers = [
        f"{path.relative_to(tests)} importa {name}"
        for path in tests.rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for name in (
            [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        )
        if name and name.split(".")[-1] in test_modules
    ]
    assert importers == []
