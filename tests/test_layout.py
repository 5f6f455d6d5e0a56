"""The code's layout holds: no import cycles, archive/ never reaches publish/, rooms import
downwards only (issue 18). Read from the modules' own import statements, function-level ones
included, so a lazy import cannot hide a circle."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("archive", "publish", "datasets")


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = p
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports. ``from . import x`` names the submodule x, not
    the package (importing a submodule runs its package's __init__, which is no arrow back)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            if subs:
                out.update(subs)
            elif target in known:
                out.add(target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``g`` as a list of names (first == last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in g}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = GREY
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if colour.get(m) == GREY:
                return stack[stack.index(m):] + [m]
            if colour.get(m) == WHITE:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = BLACK
        return None

    for n in sorted(g):
        if colour[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = find_cycle(g)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_reads_relative_and_lazy_imports(tmp_path):
    g = graph()
    # publish.site.server imports the plugin inside a function: the reader must see it
    assert "publish.site.plugin" in g["publish.site.server"]
    assert "publish.site.app" in g["publish.site.state"]


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_archive_never_imports_publish():
    g = graph()
    up = sorted(f"{n} -> {m}" for n, targets in g.items() if n.startswith("archive")
                for m in targets if m.startswith("publish"))
    assert not up, up
    for p in (ROOT / "archive").glob("*.py"):
        assert "publish." not in p.read_text(), f"{p.name} names publish's modules"
    code = ("import importlib, pkgutil, sys, archive\n"
            "for m in pkgutil.iter_modules(archive.__path__):\n"
            "    if m.name != '__main__': importlib.import_module('archive.' + m.name)\n"
            "bad = sorted(m for m in sys.modules if m.startswith('publish'))\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_nothing_imports_a_page():
    """A page module (one with routes) is reached only through the site's plugin."""
    g = graph()
    pages = {n for n in g if n.startswith("publish.site.pages.")
             and "async def " in modules()[n].read_text() and "request" in modules()[n].read_text()
             and n.rsplit(".", 1)[1] not in ("common", "queries", "provenance", "choropleth")}
    assert {"publish.site.pages.mesa", "publish.site.pages.home"} <= pages
    wrong = sorted(f"{n} -> {m}" for n, targets in g.items() for m in targets & pages
                   if n != "publish.site.plugin")
    assert not wrong, wrong


def test_every_room_says_what_it_owns():
    for init in (ROOT / "publish").glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc, f"{init.parent.name}/__init__.py: say what the room owns and may import"


def test_no_module_is_over_about_500_lines():
    long = sorted(f"{p.relative_to(ROOT)}: {n}" for p in modules().values()
                  if (n := len(p.read_text().splitlines())) > 520)
    assert not long, long
