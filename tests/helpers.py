"""What many test modules need, in one place: a free port, polling until something holds,
fast heartbeats and a small model, the small train tasks the run and panel tests give
their clients, and the notebook runner with what each executed notebook must show (the
notebook tests and the version tests read the same). Fixtures live in ``conftest.py``."""

from __future__ import annotations

import re
import socket
import time
from typing import TYPE_CHECKING, Callable

import numpy as np

import nbfl

from environments import ROOT

if TYPE_CHECKING:
    import nbformat


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``condition()`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def adder(delta: float = 1.0) -> dict:
    """A train task that adds ``delta`` to every weight."""

    def train(weights, ctx):
        return nbfl.Update({k: v + delta for k, v in weights.items()}, num_samples=1)

    return {"train": train}


def slow_adder(seconds: float = 0.05) -> dict:
    """A train task that adds 1 after ``seconds`` (or an abort), reporting accuracy 0.5."""

    def train(weights, ctx):
        ctx.abort.wait(seconds)
        return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=1, metrics={"accuracy": 0.5})

    return {"train": train}


FAST = {"heartbeat_interval": 0.1, "heartbeat_timeout": 2.0}


def small_model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}


# -- notebooks, executed for real ----------------------------------------------------
NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, env: str = "newest", **parameters) -> nbformat.NotebookNode:
    """Run notebook ``name`` in a fresh kernel of environment ``env`` with its parameters cell extended."""
    import nbformat
    from nbclient import NotebookClient

    import environments

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    client = NotebookClient(
        nb, timeout=600, kernel_name=environments.kernel(env), resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    return nb


def outputs(cell):
    for out in cell.get("outputs", []):
        yield out.get("data", {}), out.get("text", "")


def check_quickstart(nb: nbformat.NotebookNode) -> None:
    round_cell = next(c for c in nb.cells if c.source.startswith("%fl_round"))
    data = [d for d, _ in outputs(round_cell)]
    assert any("data:image/png;base64," in d.get("text/html", "") for d in data), (
        "the live plot's last frame is not in the output"
    )
    tables = [d["text/html"] for d in data if "nbfl-clients" in d.get("text/html", "")]
    rows = re.findall(r"<tr><td>(site-\d)</td>", tables[-1])
    assert sorted(rows) == ["site-1", "site-2", "site-3", "site-4"]
    text = "".join(t for c in nb.cells for _, t in outputs(c))
    final = float(re.search(r"global model test accuracy: ([\d.]+)", text).group(1))
    assert final >= 0.90, text


def check_privacy(nb: nbformat.NotebookNode) -> None:
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


def text_of(nb: nbformat.NotebookNode) -> str:
    return "".join(t for c in nb.cells for _, t in outputs(c))


def errors_of(nb: nbformat.NotebookNode) -> list[str]:
    return [o.get("ename", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def check_statistics(nb: nbformat.NotebookNode) -> None:
    text = text_of(nb)
    assert not errors_of(nb), text
    html_out = [d.get("text/html", "") for c in nb.cells for d, _ in outputs(c)]
    assert sum("nbfl-statistics" in h for h in html_out) == 2  # the two %fl_stats tables

    first = re.search(
        r"features: (\d+), total count: (\d+), sites counted: (\d+) of (\d+) \(they hold (\d+) samples\)", text
    )
    assert first, text
    features, total, counted, sites, held = map(int, first.groups())
    assert (features, counted, sites) == (64, 3, 3) and total == held  # digits train split: 1,438 images
    pooled = re.search(
        r"count (\d+), largest difference in mean ([\d.e+-]+), in std ([\d.e+-]+); histograms equal: (\w+)", text
    )
    assert pooled and int(pooled.group(1)) == total
    assert float(pooled.group(2)) < 1e-9 and float(pooled.group(3)) < 1e-9 and pooled.group(4) == "True"

    # raising --min-count just above the smallest site withholds exactly that site
    smallest = re.search(r"smallest site: (site-\d) with (\d+) samples; asking for at least (\d+)", text)
    assert smallest and int(smallest.group(3)) == int(smallest.group(2)) + 1
    withheld = re.findall(r"withheld: (site-\d) \((\d+) samples, fewer than the minimum count of (\d+)\)", text)
    assert withheld == [(smallest.group(1), smallest.group(2), smallest.group(3))], text
    after = re.search(r"count now (\d+) = (\d+) - (\d+) withheld, from (\d+) sites", text)
    assert after and int(after.group(1)) == total - int(smallest.group(2)) and int(after.group(4)) == 2
    assert any(f"{smallest.group(1)} withheld" in h for h in html_out)

    cross_cell = next(c for c in nb.cells if c.source.startswith("%fl_cross_site"))
    assert any("image/png" in d for d, _ in outputs(cross_cell)), "no cross-site heatmap"
    means = re.search(r"diagonal mean ([\d.]+), off-diagonal mean ([\d.]+), global row mean ([\d.]+)", text)
    assert means, text
    diagonal, off_diagonal, global_row = map(float, means.groups())
    # under a strong label skew a site's model does best at home, and the global model beats it elsewhere
    assert diagonal > off_diagonal + 0.1 and global_row > off_diagonal, means.groups()
    assert len(re.findall(r"site-\d holds \d+ digits, mostly", text)) == 3


def html_of(nb: nbformat.NotebookNode) -> str:
    return "".join(d.get("text/html", "") for c in nb.cells for d, _ in outputs(c))
