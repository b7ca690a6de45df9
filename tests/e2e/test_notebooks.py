"""The committed notebooks, executed for real by nbclient in a fresh kernel of an
environment built as a user gets it (tests/environments.py: by default the newest
versions that binder/requirements.txt installs)."""

import re

import nbformat
import pytest

from helpers import NOTEBOOKS, check_privacy, check_quickstart, execute, outputs


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebooks_are_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_quickstart_trains_four_clients_to_90_percent():
    check_quickstart(execute("01_quickstart.ipynb", ROUNDS=10, CLIENTS=4))


def test_algorithms_notebook_reproduces_the_comparison_on_digits():
    """The notebook's defaults: 8 clients, alpha 0.1 and 0.5, 20 rounds; at alpha 0.5 every
    algorithm ends within 3 points of the central model."""
    nb = execute("02_algorithms.ipynb")
    text = "".join(t for c in nb.cells for _, t in outputs(c))
    central = float(re.search(r"central model test accuracy: ([\d.]+)", text).group(1))
    finals = {(float(a), n): float(acc) for a, n, acc in re.findall(r"final ([\d.]+) (\w+) ([\d.]+) gap", text)}
    assert {n for _, n in finals} == {"fedavg", "fedprox", "fedopt", "scaffold"} and len(finals) == 8
    for (alpha, name), accuracy in finals.items():
        if alpha == 0.5:
            assert central - accuracy <= 0.03, (name, accuracy, central)
    html_out = [d.get("text/html", "") for c in nb.cells for d, _ in outputs(c)]
    assert any("nbfl-statistics" in h for h in html_out)
    cross_site = next(c for c in nb.cells if c.source.startswith("%fl_cross_site"))
    assert any("image/png" in d for d, _ in outputs(cross_site)), "no cross-site heatmap"
    plot_cell = next(c for c in nb.cells if "display_id=True" in c.source)
    assert any("image/png" in d for d, _ in outputs(plot_cell))
    assert "CIFAR-10 section skipped" in text or "final accuracy" in text


def test_privacy_notebook_shows_accuracy_against_epsilon_policy_and_he():
    check_privacy(execute("04_privacy.ipynb", ROUNDS=4, NOISE=[0.2, 1.0]))
