"""The house: generator/ is a few stage packages in the order data flows, and imports only point down that order.

Read from the package's own imports with grimp (the graph library under import-linter), so a new module that
reaches back up the pipeline, or closes a circle, fails here with the import that does it.
"""

from __future__ import annotations

import grimp
import pytest

# Top to bottom: a layer may import the layers below it, never one above. Within the first and the last layer
# the modules may import each other (they are one floor); the stage packages are one layer each.
TOP = ("__main__", "build", "manifest", "lock", "ownership")  # the command line, the build and its folders
STAGES = ("publish", "report", "evaluate", "explain", "model", "data")
BASE = ("config", "errors", "files", "frames", "i18n", "pause")  # settings, errors, files, pandas, languages, a hook


def layers(package: str = "generator") -> list[grimp.Layer]:
    return [grimp.Layer(*TOP, independent=False), *(grimp.Layer(s) for s in STAGES),
            grimp.Layer(*BASE, independent=False)]


def upward_imports(graph: grimp.ImportGraph, package: str = "generator") -> list[str]:
    """Each import that points up the layers, as 'importer -> imported (line n)'."""
    out = []
    for dep in graph.find_illegal_dependencies_for_layers(layers=layers(package), containers={package}):
        for route in dep.routes:
            for head in route.heads:
                for tail in route.tails:
                    out.append(f"{head} -> {tail}" + (f" (via {' -> '.join(route.middle)})" if route.middle else ""))
    return sorted(out)


def circles(graph: grimp.ImportGraph, package: str = "generator") -> list[list[str]]:
    """Import circles between modules (a package's __init__ counts as its own module)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.find_modules_directly_imported_by(m)):
            if not n.startswith(package):
                continue
            if state.get(n) == 1:
                found.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph.modules):
        if m.startswith(package) and m not in state:
            visit(m)
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("generator", cache_dir=None)


def test_imports_point_down_the_pipeline(graph):
    assert upward_imports(graph) == []


def test_no_import_circles(graph):
    assert circles(graph) == []


def test_every_module_sits_in_a_stage_or_is_named_on_top_or_at_the_base(graph):
    """A newcomer finds any file's stage from its path: no new flat module slips in beside the named ones."""
    allowed = {f"generator.{m}" for m in TOP + BASE + STAGES} | {"generator"}
    flat = sorted(m for m in graph.modules if m.count(".") == 1 and m not in allowed)
    assert flat == []
    assert all(graph.find_children(f"generator.{s}") for s in STAGES)


def _toy_graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    g = grimp.ImportGraph()
    for m in ("pkg", "pkg.build", "pkg.config", *(f"pkg.{s}" for s in STAGES), *(f"pkg.{s}.mod" for s in STAGES)):
        g.add_module(m)
    for a, b in imports:
        g.add_import(importer=a, imported=b)
    return g


def test_the_checks_catch_an_upward_import_and_a_circle():
    ok = _toy_graph(("pkg.publish.mod", "pkg.report.mod"), ("pkg.model.mod", "pkg.data.mod"),
                    ("pkg.data.mod", "pkg.config"), ("pkg.build", "pkg.publish.mod"))
    assert upward_imports(ok, "pkg") == [] and circles(ok, "pkg") == []
    up = _toy_graph(("pkg.evaluate.mod", "pkg.report.mod"))  # what leaderboard -> analysis used to be
    assert upward_imports(up, "pkg") == ["pkg.evaluate.mod -> pkg.report.mod"]
    base_up = _toy_graph(("pkg.config", "pkg.data.mod"))
    assert upward_imports(base_up, "pkg") == ["pkg.config -> pkg.data.mod"]
    loop = _toy_graph(("pkg.explain.mod", "pkg.model.mod"), ("pkg.model.mod", "pkg.explain.mod"))
    assert circles(loop, "pkg") == [["pkg.explain.mod", "pkg.model.mod", "pkg.explain.mod"]]
