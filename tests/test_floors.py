"""The packages stand on floors, and imports only run down them.

From the ground: `graphs` (schema, image + tokens -> graph), then `models` and
`data` side by side (peers: neither imports the other), then `train` (the
trainer), then `evaluate` (scoring, and the experiment driver evaluate.ablate,
which runs the trainer), and on top `tools`, the commands that need several
floors at once (python -m tools.inspect_graph). A module may import its own
package and packages on lower floors; every import counts, including the ones
inside functions.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"graphs": 0, "models": 1, "data": 1, "train": 2, "evaluate": 3, "tools": 4}
# (importing module, imported package) pairs allowed against the floors. None today: keep it so.
EXCEPTIONS: set[tuple[str, str]] = set()
NOT_PACKAGES = {"tests", "bench", "docs"}  # folders of the repository that no package imports


def imported_packages(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level name) of every import in a file; a relative import names its own package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, package if node.level else node.module.split(".")[0]))
    return found


def floor_violations(root: Path) -> list[str]:
    """Every import from one of the packages to a higher floor or to a peer, as 'file:line: a -> b'."""
    violations = []
    for package, floor in FLOORS.items():
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            for line, target in imported_packages(path, package):
                if target not in FLOORS or target == package or FLOORS[target] < floor:
                    continue
                if (module, target) not in EXCEPTIONS:
                    where = "a peer on floor" if FLOORS[target] == floor else "floor"
                    violations.append(
                        f"{path.relative_to(root)}:{line}: {package} (floor {floor}) imports {target} "
                        f"({where} {FLOORS[target]})"
                    )
    return violations


def test_imports_run_only_down_the_floors():
    violations = floor_violations(ROOT)
    assert not violations, "imports against the floors:\n" + "\n".join(violations)


def test_every_package_has_a_floor():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - NOT_PACKAGES
    assert packages == set(FLOORS), "give each package a floor in FLOORS (and in docs/design.md)"


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    """A lazy import in a function, `import a.b` and `from . import x` are all read."""
    for package in FLOORS:
        (tmp_path / package).mkdir()
    (tmp_path / "graphs" / "lazy.py").write_text("def f():\n    from train.loop import train_epoch\n")
    (tmp_path / "data" / "peer.py").write_text("import models.clip\nfrom . import cache\n")
    assert floor_violations(tmp_path) == [
        "graphs/lazy.py:2: graphs (floor 0) imports train (floor 2)",
        "data/peer.py:1: data (floor 1) imports models (a peer on floor 1)",
    ]
