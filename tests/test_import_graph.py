"""The package has no import cycle: the graph of `attnpaths` modules importing each other is acyclic.

Every import statement counts, at module level or inside a function: a lazy import inside a function (the old
deprecated aliases' module `__getattr__`) still ties the two modules together, it only hides the cycle until the
line runs. The graph is read from the source with `ast`, not by importing, so a cycle cannot be masked by the
order the test happens to import things in.
"""

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file for every .py file of the package at `root` (a package is its __init__)."""
    out = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imported_modules(name: str, file: Path, modules: dict) -> set[str]:
    """The package's modules that `file` (module `name`) imports anywhere in its body.

    `from a.b import c` is an edge to `a.b.c` when that is a module, else to `a.b`; relative imports are resolved
    against the module's package.
    """
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in found if m in modules and m != name}


def import_cycle(root: Path) -> list[str] | None:
    """One import cycle among the modules of the package at `root` (as graphlib reports it), or None."""
    modules = module_names(root)
    graph = {name: imported_modules(name, file, modules) for name, file in modules.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        return err.args[1]
    return None


def test_attnpaths_has_no_import_cycle():
    cycle = import_cycle(SRC / "attnpaths")
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def _package(tmp_path: Path, files: dict) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path / "pkg"


@pytest.mark.parametrize("files", [
    pytest.param({"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n", "pkg/b.py": "import pkg.a\n"},
                 id="module-level"),
    pytest.param({"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import f\n",
                  "pkg/b.py": "def f():\n    from . import a\n    return a\n"}, id="lazy-relative"),
    pytest.param({"pkg/__init__.py": "from pkg.sub.c import g\n", "pkg/sub/__init__.py": "",
                  "pkg/sub/c.py": "def g():\n    from pkg import VERSION\n"}, id="through-the-package"),
])
def test_a_planted_cycle_is_found(tmp_path, files):
    cycle = import_cycle(_package(tmp_path, files))
    assert cycle is not None and cycle[0] == cycle[-1]


def test_an_acyclic_package_passes(tmp_path):
    files = {"pkg/__init__.py": "from pkg.a import f\n", "pkg/a.py": "from pkg import b\nfrom .b import h\n",
             "pkg/b.py": "import os\n\ndef h():\n    import pkg.c\n", "pkg/c.py": ""}
    assert import_cycle(_package(tmp_path, files)) is None
