"""nbfl's roles hold: read from the sources with ``ast``, not by importing them.

Every module belongs to one role (``ROLES``), and a role may use only the roles below it
(``MAY_USE``); the rules are written out in ``docs/architecture.md``. A dependency is
any import statement (at module level, inside a function or under ``TYPE_CHECKING``)
and any import by name: a string constant that names an nbfl module
(``importlib.import_module("nbfl.cli")``, ``[sys.executable, "-m", "nbfl.participant"]``,
a template's preload list) or a code string that imports one (``python -c "from nbfl...
import ..."``). No two modules may need each other, by either kind of dependency.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "nbfl"

# role: the package prefixes in it (the first match, longest first, decides)
ROLES = {
    "errors": ("nbfl.errors",),
    "protocol": ("nbfl.protocol",),
    "data": ("nbfl.data",),
    "transport": ("nbfl.transport",),
    "filters": ("nbfl.filters",),
    "algorithm names": ("nbfl.algorithms",),  # its server and client halves: see role()
    "controller": ("nbfl.controller", "nbfl.workflows", "nbfl.aggregators"),
    "participant": ("nbfl.participant",),
    "launch": ("nbfl.launch",),
    "faces": ("nbfl.notebook", "nbfl.jupyter", "nbfl.cli", "nbfl.experiments", "nbfl.__main__", "nbfl"),
}
MAY_USE = {
    "errors": set(),
    "protocol": {"errors"},
    "data": set(),
    "transport": {"errors", "protocol"},
    "filters": {"errors", "protocol"},
    "algorithm names": {"errors", "protocol"},
    "controller": {"errors", "protocol", "transport", "filters", "algorithm names"},
    "participant": {"errors", "protocol", "transport", "filters", "data", "algorithm names"},
    "launch": {"errors", "protocol", "transport", "filters", "data", "participant", "algorithm names"},
    "faces": set(ROLES),
}
MODULE_NAME = re.compile(r"^nbfl(\.[A-Za-z_]\w*)+$")
CODE_IMPORT = re.compile(r"\b(?:from|import)\s+(nbfl(?:\.[A-Za-z_]\w*)*)")


def role(module: str) -> str:
    """A module's role; in ``nbfl/algorithms/NAME/`` a pair's ``server*`` module is the
    controller's, its ``client*`` modules the participant's, the rest their shared names."""
    parts = module.split(".")
    if parts[:2] == ["nbfl", "algorithms"] and len(parts) == 4:
        half = {"server": "controller", "client": "participant"}
        return next((r for prefix, r in half.items() if parts[3].startswith(prefix)), "algorithm names")
    prefixes = sorted(((p, r) for r, ps in ROLES.items() for p in ps), key=lambda pr: -len(pr[0]))
    return next(r for p, r in prefixes if module == p or module.startswith(p + "."))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(root: Path = ROOT) -> dict[str, str]:
    """Every nbfl module's source, by module name; ``__init__`` counts as its package."""
    return {module_name(p, root): p.read_text() for p in sorted(root.rglob("*.py"))}


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
    return {id(n.body[0].value) for n in nodes if n.body and isinstance(n.body[0], ast.Expr)}  # type: ignore[attr-defined]


def _known(name: str, modules: set[str]) -> str | None:
    """The longest known module that ``name`` is or lies in (``nbfl.cli.main`` is ``nbfl.cli``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def dependencies(name: str, source: str, modules: set[str]) -> dict[str, str]:
    """The nbfl modules ``name`` needs, each with how (for the message): ``from .x import y``
    names ``x``, or ``x.y`` when that is a module (then ``x`` is only its package)."""
    is_package = any(m.startswith(name + ".") for m in modules) or name == "nbfl"
    package = name if is_package else name.rpartition(".")[0]
    found: dict[str, str] = {}
    tree = ast.parse(source, name)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, f"line {line}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
            for sub in submodules:
                found.setdefault(sub, f"line {line}: from {target} import {sub.rpartition('.')[2]}")
            if len(submodules) < len(node.names):  # some names are the module's own, not its submodules
                found.setdefault(target, f"line {line}: from {target} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value.strip()
            named = [text] if MODULE_NAME.match(text) else CODE_IMPORT.findall(text)
            for by_name in named:
                found.setdefault(by_name, f"line {line}: by name {text[:60]!r}")
        elif isinstance(node, (ast.List, ast.Tuple)):  # [python, "-m", MODULE, ...]: "nbfl" is nbfl.__main__
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, module in zip(items, items[1:]):
                if flag == "-m" and isinstance(module, str) and module.split(".")[0] == "nbfl":
                    found.setdefault(
                        module + ".__main__" if module + ".__main__" in modules else module,
                        f"line {line}: by name -m {module}",
                    )
    out = {}
    for target, how in found.items():
        known = _known(target, modules) if target.startswith("nbfl") else None
        if known is not None and known != name:
            out[known] = how
    return out


def graph(code: dict[str, str]) -> dict[str, dict[str, str]]:
    modules = set(code)
    return {name: dependencies(name, source, modules) for name, source in code.items()}


def violations(edges: dict[str, dict[str, str]]) -> list[str]:
    """Each dependency that a role may not have, as ``who -> what (how)``."""
    out = []
    for name, targets in sorted(edges.items()):
        for target, how in sorted(targets.items()):
            if role(target) != role(name) and role(target) not in MAY_USE[role(name)]:
                out.append(f"{name} ({role(name)}) -> {target} ({role(target)}): {how}")
    return out


def cycles(edges: dict[str, set[str]] | dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def plant(code: dict[str, str], module: str, line: str) -> dict[str, str]:
    """``code`` with ``line`` added at the end of ``module``, as a careless change would."""
    return {**code, module: code[module] + "\n" + line + "\n"}


def test_every_module_has_a_role_and_every_role_a_module():
    code = sources()
    assert {role(m) for m in code} == set(ROLES)
    assert (
        role("nbfl.algorithms.scaffold.server") == "controller"
        and role("nbfl.algorithms.scaffold") == "algorithm names"
    )
    assert role("nbfl.algorithms.scaffold.client_torch") == "participant"
    assert role("nbfl") == "faces" and role("nbfl.protocol.wire") == "protocol"
    assert role("nbfl.workflows.fedopt") == "controller" and role("nbfl.launch.template") == "launch"


def test_the_roles_hold_and_nothing_imports_in_a_circle():
    edges = graph(sources())
    assert violations(edges) == []
    assert cycles(edges) == []
    # the graph is the real one: a few dependencies that must be there are
    assert "nbfl.protocol.wire" in edges["nbfl.transport.threads"]
    assert "nbfl.controller.controller" in edges["nbfl"]
    assert "nbfl.participant" in edges["nbfl.launch.spawn"]  # by name: python -m nbfl.participant
    assert "nbfl.participant.command" in edges["nbfl.launch.spawn"]  # by name: the template's preload


def test_the_protocol_imports_nothing_else_of_nbfl():
    edges = graph(sources())
    protocol = {m: t for m, t in edges.items() if role(m) == "protocol"}
    assert protocol and all(role(t) in ("protocol", "errors") for ts in protocol.values() for t in ts)


def test_a_planted_cross_role_import_fails():
    code = sources()
    planted = plant(code, "nbfl.workflows.scatter_gather", "from ..participant.executor import DataKind")
    assert violations(graph(planted)) == [
        "nbfl.workflows.scatter_gather (controller) -> nbfl.participant.executor (participant): "
        f"line {planted['nbfl.workflows.scatter_gather'].count(chr(10))}: from nbfl.participant.executor import ..."
    ]
    across = plant(code, "nbfl.algorithms.scaffold.client", "from .server import Scaffold")  # a pair's halves too
    assert [v.split(":")[0] for v in violations(graph(across))] == [
        "nbfl.algorithms.scaffold.client (participant) -> nbfl.algorithms.scaffold.server (controller)"
    ]
    upward = plant(code, "nbfl.participant.client", "def _later():\n    from ..controller.run import Run")
    assert [v.split(":")[0] for v in violations(graph(upward))] == [
        "nbfl.participant.client (participant) -> nbfl.controller.run (controller)"
    ]


def test_an_import_by_name_below_the_faces_fails():
    code = sources()
    planted = plant(code, "nbfl.launch.template", 'importlib.import_module("nbfl.cli")')
    edges = graph(planted)
    assert [v for v in violations(edges) if "nbfl.cli" in v] == [
        f"nbfl.launch.template (launch) -> nbfl.cli (faces): "
        f"line {planted['nbfl.launch.template'].count(chr(10))}: by name 'nbfl.cli'"
    ]
    assert any({"nbfl.cli", "nbfl.launch.template"} <= set(c) for c in cycles(edges))  # cli -> spawn -> template -> cli
    for line in (
        'CMD = [sys.executable, "-m", "nbfl", "client"]',
        'BOOT = "from nbfl.notebook.magics import load"',
        '__import__("nbfl.jupyter.server_extension")',
    ):
        assert any(
            v.startswith("nbfl.launch.spawn (launch) -> nbfl.")
            for v in violations(graph(plant(code, "nbfl.launch.spawn", line)))
        ), line


def test_docstrings_and_other_strings_are_not_imports():
    edges = graph(
        {
            "nbfl.protocol.x": '"""Sent by nbfl.controller.run, see ``nbfl.cli``."""\nNAME = "nbfl://host"\n',
            "nbfl.controller.run": "",
            "nbfl.cli": "",
        }
    )
    assert edges["nbfl.protocol.x"] == {}


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
