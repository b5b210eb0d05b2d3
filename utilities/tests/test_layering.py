"""The floors of the tree: ``utilities`` imports no package of this project, and no app imports
the project package (``eocortex_web``: settings and wiring, the top floor, which imports the apps).
Tests, benchmarks and the test bed may import anything."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {p.parent.name for p in ROOT.glob("*/__init__.py")}
OUTSIDE_THE_APPS = {"eocortex_web", "utilities", "testbed", "bench", "tools", "tests"}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & PACKAGES


def modules(package: str, *, with_tests: bool):
    for path in sorted((ROOT / package).rglob("*.py")):
        if with_tests or "tests" not in path.relative_to(ROOT).parts:
            yield path


def test_the_ground_floor_imports_no_package_of_the_project():
    assert PACKAGES >= {"utilities", "eocortex_web", "servers", "cameras"}  # the walk found the tree
    found = {
        str(path.relative_to(ROOT)): sorted(imported)
        for path in modules("utilities", with_tests=False)
        if (imported := imported_packages(path) - {"utilities"})
    }
    assert found == {}


def test_no_app_imports_the_project_package():
    apps = sorted(PACKAGES - OUTSIDE_THE_APPS)
    assert "redundancy" in apps and "recording" in apps
    found = {
        str(path.relative_to(ROOT))
        for app in apps
        for path in modules(app, with_tests=False)
        if "eocortex_web" in imported_packages(path)
    }
    assert found == set()
