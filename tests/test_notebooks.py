"""The committed notebooks, executed for real by nbclient in a fresh kernel of the
environment Binder builds from binder/requirements.txt."""

import functools
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
REQUIREMENTS = ROOT / "binder" / "requirements.txt"
KERNEL = "nbfl-binder"


@functools.cache
def binder_kernel() -> str:
    """The kernel of :func:`binder_venv`, found through JUPYTER_PATH."""
    venv = binder_venv()
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(venv / "share" / "jupyter"), os.environ.get("JUPYTER_PATH")]))
    return KERNEL


@functools.cache
def binder_venv() -> Path:
    """A virtual environment (with a kernel) built from binder/requirements.txt the way
    repo2docker builds it (``pip install -r`` from the repository root), so the course is
    tested with what Binder installs rather than with the test tools' environment.

    Two liberties, both about where torch comes from: this machine reaches PyPI only, so
    the line adding PyTorch's CPU index is left out, and the local CPU build of torch is
    installed first (it meets ``torch>=2.0``). The environment is kept in build/ between
    runs while the requirements and pyproject.toml stay the same; nbfl is reinstalled
    from the working tree every session.
    """
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = ROOT / "build" / f"binder-venv-{key}"
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([*pip, "torch==2.13.0"])
        lines = [ln for ln in REQUIREMENTS.read_text().splitlines() if not ln.startswith("--extra-index-url")]
        local = venv / "requirements-local.txt"
        local.write_text("\n".join(lines) + "\n")
        _run([*pip, "-r", str(local)])
        _run([str(python), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", KERNEL])
    _run([*pip, "--no-deps", "--force-reinstall", "."])
    return venv


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def execute(name: str, **parameters) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    client = NotebookClient(nb, timeout=600, kernel_name=binder_kernel(), resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def outputs(cell):
    for out in cell.get("outputs", []):
        yield out.get("data", {}), out.get("text", "")


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebooks_are_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_quickstart_trains_four_clients_to_90_percent():
    nb = execute("01_quickstart.ipynb", ROUNDS=10, CLIENTS=4)
    round_cell = next(c for c in nb.cells if c.source.startswith("%fl_round"))
    data = [d for d, _ in outputs(round_cell)]
    assert any("image/png" in d for d in data), "the live plot's last frame is not in the output"
    tables = [d["text/html"] for d in data if "nbfl-clients" in d.get("text/html", "")]
    rows = re.findall(r"<tr><td>(site-\d)</td>", tables[-1])
    assert sorted(rows) == ["site-1", "site-2", "site-3", "site-4"]
    text = "".join(t for c in nb.cells for _, t in outputs(c))
    final = float(re.search(r"global model test accuracy: ([\d.]+)", text).group(1))
    assert final >= 0.90, text


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
    nb = execute("04_privacy.ipynb", ROUNDS=4, NOISE=[0.2, 1.0])
    text = "".join(t for c in nb.cells for _, t in outputs(c))
    rows = re.findall(r"noise ([\d.]+): epsilon ([\d.e+]+), accuracy ([\d.]+)", text)
    assert [float(z) for z, _, _ in rows] == [0.2, 1.0]
    assert float(rows[0][1]) > float(rows[1][1])  # less noise, more epsilon spent
    assert re.search(r"noise None: no DP, accuracy ([\d.]+)", text)
    plot_cell = next(c for c in nb.cells if "xscale" in c.source)
    assert any("image/png" in d for d, _ in outputs(plot_cell))
    assert "hospital -> dp, exclude" in text and "clinic -> dp\n" in text
    he = re.search(r"plain FedAvg ([\d.]+), HE FedAvg \(decrypted by a client\) ([\d.]+)", text)
    assert he and abs(float(he.group(1)) - float(he.group(2))) <= 0.005
    assert "holds a secret key: False" in text
