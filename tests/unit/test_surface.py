"""nbfl's public surface is short, and the course notebooks import nothing else.

``import nbfl`` offers about a dozen names; the rest lives in a few public modules, each
with its ``__all__``. Every ``from nbfl... import`` in the course's code cells names a
public module and names in its ``__all__``, so the course teaches nothing a refactor
may take away.
"""

import ast
import importlib
import json
from pathlib import Path

import nbfl

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PUBLIC = {
    "nbfl",  # controller, client, runs, workshops, tasks, local clients
    "nbfl.data",  # datasets and partitions
    "nbfl.data.vision",  # the CIFAR-10 loader in torchvision's shape
    "nbfl.experiments",  # the course's comparisons
    "nbfl.filters",  # privacy filters
    "nbfl.filters.he",  # homomorphic encryption: the filters and their keys
    "nbfl.notebook",  # the history table, for a controller driven from Python
    "nbfl.participant.executor",  # the seed-style Executor API
    "nbfl.pytorch",  # torch models, weights, evaluation, the array trainer
    "nbfl.results",  # a run's history as tables, CSV and JSON
    "nbfl.workflows",  # the algorithms by class
}


def imports_of_the_course() -> list[tuple[str, str, str]]:
    """(notebook, module, name) of every ``from nbfl... import name`` in the code cells."""
    found = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "\n".join(
                "pass" if line.lstrip().startswith(("%", "!")) else line
                for line in "".join(cell["source"]).splitlines()
            )
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nbfl":
                    found += [(path.name, node.module, alias.name) for alias in node.names]
                elif isinstance(node, ast.Import):
                    found += [(path.name, a.name, "") for a in node.names if a.name.split(".")[0] == "nbfl"]
    return found


def test_import_nbfl_offers_about_a_dozen_names():
    assert 10 <= len(nbfl.__all__) <= 14 and all(hasattr(nbfl, name) for name in nbfl.__all__)
    assert issubclass(nbfl.NbflError, Exception) and callable(nbfl.make_workflow)


def test_every_public_module_says_what_it_offers():
    for name in PUBLIC:
        module = importlib.import_module(name)
        assert module.__all__ and all(hasattr(module, n) for n in module.__all__), name


def test_the_course_notebooks_import_only_public_names():
    found = imports_of_the_course()
    assert len(found) > 20  # the reader sees the course's imports
    private = [
        (notebook, module, name)
        for notebook, module, name in found
        if module not in PUBLIC or (name and name not in importlib.import_module(module).__all__)
    ]
    assert private == []
