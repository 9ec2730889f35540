"""Imports point one way, and no module imports itself back through others.

Every import of every module under upgrader/ is read with ``ast``: at the top level, inside
functions (deferred), under ``if TYPE_CHECKING:``, absolute or relative, ``import a.b`` and
``from a import b`` (``b`` may be a submodule). A deferred or type-only import is still a
dependency of the module's meaning, so it counts the same. What is not read: imports by
string (``importlib.import_module``), and the ancestor packages an import runs implicitly
(``upgrader.gates.verdicts`` runs ``upgrader/gates/__init__.py`` too): an edge goes to the
module named, so a package ``__init__`` that re-exports its own submodules is not a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# This table encodes DESIGN.md section 3's direction
# (cli -> run -> {plan, gates, actions, journal, ansible_adapter, windows} -> {opennebula,
# config, errors}): a module may import modules of its own top-level subpackage and of
# subpackages of strictly lower rank, never of a higher rank nor of another package of its
# own rank. The package root (upgrader/__init__.py) may import nothing of upgrader but
# errors and text; every module may import the root.
RANKS: dict[str, int] = {
    "upgrader.errors": 0,
    "upgrader.text": 0,
    "upgrader.compat": 0,
    "upgrader.opennebula": 1,
    "upgrader.storage": 1,
    "upgrader.config": 2,
    "upgrader.journal": 3,
    "upgrader.ansible_adapter": 4,
    "upgrader.windows": 4,
    "upgrader.actions": 4,
    "upgrader.plan": 5,
    "upgrader.gates": 6,
    "upgrader.reports": 6,
    "upgrader.run": 7,
    "upgrader.lab": 7,
    "upgrader.cli": 8,
    "upgrader.__main__": 9,
}
ROOT_MAY_IMPORT = {"upgrader.errors", "upgrader.text", "upgrader.compat"}


@dataclass
class Graph:
    """Modules found, the import edges between them, and the imports of outside packages."""

    root: Path  # the directory holding the package
    files: dict[str, Path] = field(default_factory=dict)  # module -> file
    # (importer, imported, line) for every import of a module of the package
    edges: list[tuple[str, str, int]] = field(default_factory=list)
    # (importer, top-level name, line) for every import of anything outside the package
    external: list[tuple[str, str, int]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def where(self, module: str, line: int | None = None) -> str:
        path = self.files[module].relative_to(self.root).as_posix()
        return path if line is None else f"{path}:{line}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def build_graph(root: Path, package: str) -> Graph:
    """Read every module of ``root/package`` and every import in it."""
    graph = Graph(root)
    for path in sorted((root / package).rglob("*.py")):
        graph.files[module_name(path, root)] = path
    for module, path in graph.files.items():
        is_package = path.name == "__init__.py"
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError as exc:
            graph.unreadable.append(f"{graph.where(module, exc.lineno)}: cannot parse: {exc.msg}")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    _add(graph, package, module, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, is_package, node.module, node.level)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    _add(graph, package, module, sub if sub in graph.files else base, node.lineno)
    return graph


def _absolute(module: str, is_package: bool, name: str | None, level: int) -> str:
    """The absolute name ``from <level dots><name> import ...`` means in ``module``."""
    if level == 0:
        return name or ""
    parts = module.split(".")
    if not is_package:
        parts.pop()  # a plain module's package is its parent
    parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def _add(graph: Graph, package: str, importer: str, name: str, line: int) -> None:
    if name != package and not name.startswith(package + "."):
        graph.external.append((importer, name.split(".")[0], line))
        return
    parts = name.split(".")
    while parts and ".".join(parts) not in graph.files:  # import a.b.C: the module a.b
        parts.pop()
    edge = (importer, ".".join(parts), line)
    if parts and edge not in graph.edges:  # from a import x, y: one edge
        graph.edges.append(edge)


def rank_key(module: str) -> str:
    """The entry of the rank table a module falls under (its top-level subpackage)."""
    return ".".join(module.split(".")[:2])


def direction_violations(
    graph: Graph, ranks: Mapping[str, int], root_may: Iterable[str]
) -> list[str]:
    """One line per import against the direction."""
    root_may = set(root_may)
    out: list[str] = []
    unranked = sorted({rank_key(m) for m in graph.files if "." in m} - set(ranks))
    out += [f"{key} is in no rank of the table: give it one" for key in unranked]
    for importer, imported, line in graph.edges:
        source, target = rank_key(importer), rank_key(imported)
        if "." not in imported or source == target or target not in ranks:
            continue  # the package root, the same subpackage, or reported as unranked
        if "." not in importer:  # the package root: rank 0, and only what root_may names
            if target not in root_may:
                out.append(f"{graph.where(importer, line)} imports {imported} "
                           f"(rank {ranks[target]} > rank 0, the package root)")  # fmt: skip
            continue
        if source not in ranks:
            continue
        r1, r2 = ranks[source], ranks[target]
        if r2 >= r1:
            sign = ">" if r2 > r1 else "="
            out.append(f"{graph.where(importer, line)} imports {imported} "
                       f"(rank {r2} {sign} rank {r1})")  # fmt: skip
    return sorted(out, key=_by_place)


def cycles(graph: Graph) -> list[str]:
    """One line per strongly connected group of modules: a cycle through it, with lines."""
    succ: dict[str, dict[str, int]] = {m: {} for m in graph.files}
    for importer, imported, line in graph.edges:
        succ[importer].setdefault(imported, line)
    out = []
    for group in _strongly_connected(succ):
        if len(group) == 1 and group[0] not in succ[group[0]]:
            continue
        start = min(group)
        path = _cycle_through(start, set(group), succ)
        hops = [f"{a} ({graph.where(a, succ[a][b])})" for a, b in pairwise(path)]
        more = sorted(set(group) - set(path))
        knot = f" (and {len(more)} more modules in the same knot: {', '.join(more)})"
        out.append("cycle: " + " -> ".join([*hops, path[-1]]) + (knot if more else ""))
    return sorted(out)


def _strongly_connected(succ: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for top in sorted(succ):
        if top in index:
            continue
        work = [(top, iter(sorted(succ[top])))]
        index[top] = low[top] = len(index)
        stack.append(top)
        on_stack.add(top)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(succ[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(sorted(group))
    return groups


def _cycle_through(start: str, group: set[str], succ: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The shortest path start -> ... -> start inside ``group`` (breadth first)."""
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(succ[node]):
                if child not in group:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return [*reversed(path), start]
                if child not in came:
                    came[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a group but on no cycle")


def one_importer_only(graph: Graph) -> list[str]:
    """Nothing but upgrader.cli imports upgrader.run; only upgrader.cli imports click; only
    upgrader/ansible_adapter/runner.py imports ansible_runner."""
    out = []
    for importer, imported, line in graph.edges:
        if rank_key(imported) == "upgrader.run" and rank_key(importer) not in (
            "upgrader.cli", "upgrader.run"
        ):  # fmt: skip
            out.append(f"{graph.where(importer, line)} imports {imported} "
                       f"(only upgrader.cli may import upgrader.run)")  # fmt: skip
    for importer, name, line in graph.external:
        if name == "click" and rank_key(importer) != "upgrader.cli":
            out.append(f"{graph.where(importer, line)} imports click (only upgrader.cli may)")
        if name == "ansible_runner" and importer != "upgrader.ansible_adapter.runner":
            out.append(f"{graph.where(importer, line)} imports ansible_runner "
                       f"(only upgrader/ansible_adapter/runner.py may)")  # fmt: skip
    return sorted(out, key=_by_place)


def _by_place(line: str) -> tuple[str, int, str]:
    """Sort report lines by file, then line number."""
    place = line.split(" ", 1)[0]
    path, _, number = place.partition(":")
    return path, int(number) if number.isdigit() else 0, line


def _report(lines: list[str]) -> str:
    return f"{len(lines)} found:\n" + "\n".join(lines)


# --- the real tree ---------------------------------------------------------------------------


def test_every_module_is_read() -> None:
    graph = build_graph(ROOT, "upgrader")
    assert not graph.unreadable, _report(graph.unreadable)
    assert "upgrader.errors" in graph.files and len(graph.edges) > 100


def test_imports_point_one_way() -> None:
    violations = direction_violations(build_graph(ROOT, "upgrader"), RANKS, ROOT_MAY_IMPORT)
    assert not violations, _report(violations)


def test_no_module_imports_itself_back() -> None:
    found = cycles(build_graph(ROOT, "upgrader"))
    assert not found, _report(found)


def test_run_click_and_ansible_runner_each_have_their_one_importer() -> None:
    found = one_importer_only(build_graph(ROOT, "upgrader"))
    assert not found, _report(found)


def test_the_verdicts_load_neither_the_run_nor_ansible_runner() -> None:
    code = (
        "import sys, upgrader.gates.verdicts\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('upgrader.run')"
        " or m.split('.')[0] == 'ansible_runner'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], "import upgrader.gates.verdicts loaded " + ", ".join(
        done.stdout.split()
    )


# --- the checker itself -------------------------------------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_finds_a_reversed_import_and_cycles(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.low import base\n",  # the root importing rank 1
        "pkg/low/__init__.py": "",
        "pkg/low/base.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg.high import top
            def later():
                from ..high.top import thing
            """,
        "pkg/high/__init__.py": "",
        "pkg/high/top.py": "import pkg.low.base\nthing = 1\n",
        "pkg/high/a.py": "def f():\n    import pkg.high.b\n",
        "pkg/high/b.py": "from . import a\n",
        "pkg/high/c.py": "from pkg.low import base as fine\n",
        "pkg/side.py": "import pkg.other\n",
        "pkg/other.py": "",
    })  # fmt: skip
    graph = build_graph(tmp_path, "pkg")
    ranks = {"pkg.low": 1, "pkg.high": 2, "pkg.side": 2, "pkg.other": 2}
    assert direction_violations(graph, ranks, root_may=()) == [
        "pkg/__init__.py:1 imports pkg.low.base (rank 1 > rank 0, the package root)",
        "pkg/low/base.py:3 imports pkg.high.top (rank 2 > rank 1)",
        "pkg/low/base.py:5 imports pkg.high.top (rank 2 > rank 1)",
        "pkg/side.py:1 imports pkg.other (rank 2 = rank 2)",
    ]
    assert cycles(graph) == [
        "cycle: pkg.high.a (pkg/high/a.py:2) -> pkg.high.b (pkg/high/b.py:1) -> pkg.high.a",
        "cycle: pkg.high.top (pkg/high/top.py:1) -> pkg.low.base (pkg/low/base.py:3) "
        "-> pkg.high.top",
    ]
    del ranks["pkg.other"]
    assert direction_violations(graph, ranks, root_may=("pkg.low",)) == [
        "pkg.other is in no rank of the table: give it one",
        "pkg/low/base.py:3 imports pkg.high.top (rank 2 > rank 1)",
        "pkg/low/base.py:5 imports pkg.high.top (rank 2 > rank 1)",
    ]


def test_the_checker_finds_click_run_and_ansible_runner_imported_elsewhere(tmp_path: Path) -> None:
    _write(tmp_path, {
        "upgrader/__init__.py": "",
        "upgrader/run/__init__.py": "import click\n",
        "upgrader/cli/__init__.py": "import click\nfrom upgrader import run\n",
        "upgrader/__main__.py": "def main():\n    from upgrader.run import x\n",
        "upgrader/run/x.py": "",
        "upgrader/ansible_adapter/runner.py": "import ansible_runner\n",
        "upgrader/ansible_adapter/events.py": "from ansible_runner.utils import y\n",
    })  # fmt: skip
    assert one_importer_only(build_graph(tmp_path, "upgrader")) == [
        "upgrader/__main__.py:2 imports upgrader.run.x (only upgrader.cli may import upgrader.run)",
        "upgrader/ansible_adapter/events.py:1 imports ansible_runner "
        "(only upgrader/ansible_adapter/runner.py may)",
        "upgrader/run/__init__.py:1 imports click (only upgrader.cli may)",
    ]
