"""Peak memory (PSS) of the quickstart notebook: clients forked from a warm template
against separate client processes.

The quickstart (``notebooks/01_quickstart.ipynb``) makes its kernel the controller and
spawns 4 clients with ``%fl_spawn``. Each run executes it with nbclient in a fresh
kernel, its parameters cell overridden small (``ROUNDS``), with ``NBFL_SPAWN`` set in
the kernel's environment: ``template`` (clients forked from one process that imported
torch once, sharing its pages copy-on-write) or ``processes`` (each client a process
of its own that imports everything itself: the baseline). A thread sums the PSS
(``/proc/PID/smaps_rollup``: shared pages divided among the processes that map them)
of the kernel and all its descendants every ``--interval`` seconds; the peak of that
sum is what counts against a pod's memory limit (Binder's is 2 GB).

It also times the ``%fl_spawn`` cell: from its start until the magic returns, which it
does once all clients have joined (the first spawn starts the template too); then,
after the notebook and no longer sampled, a later ``%fl_spawn`` in the same kernel
(a new controller, the same number of clients: the template is warm by then). The two designs run interleaved, so drift on a
shared machine hits both alike; the table shows each design's largest peak over its
runs, the median spawn time, and the ratio template / processes from this same run.

    python benchmarks/notebook_memory.py                  # 3 runs of each, ROUNDS=3
    python benchmarks/notebook_memory.py --repeat 1       # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_quickstart.ipynb"
DESIGNS = ("processes", "template")  # the baseline first
MIB = 1024 * 1024


def pss_bytes(pid: int) -> int:
    """The process's proportional set size, or 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class Sampler(threading.Thread):
    """Every ``interval`` seconds: the PSS of ``root`` and its descendants, summed; keeps
    the peak and how it was made up (kernel, template, clients)."""

    def __init__(self, root: int, interval: float):
        super().__init__(name="pss-sampler", daemon=True)
        self.root, self.interval = psutil.Process(root), interval
        self.peak, self.parts, self.samples = 0, {}, 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)
        self.sample()

    def sample(self) -> None:
        try:
            family = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        parts = {"kernel": pss_bytes(self.root.pid), "template": 0, "clients": 0, "processes": 0}
        for proc in family:
            try:
                template = "nbfl.launch.template" in " ".join(proc.cmdline())
                parent = proc.ppid()
            except psutil.Error:
                continue
            if template and parent == self.root.pid:
                kind = "template"
            else:
                kind = "clients"
            parts[kind] += pss_bytes(proc.pid)
            parts["processes"] += 1
        total = parts["kernel"] + parts["template"] + parts["clients"]
        self.samples += 1
        if total > self.peak:
            self.peak, self.parts = total, parts


def run_notebook(design: str, rounds: int, clients: int, interval: float) -> dict:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source += f"\nROUNDS = {rounds}\nCLIENTS = {clients}"
    resources = {"metadata": {"path": str(NOTEBOOK.parent)}}
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources)
    env = {**os.environ, "NBFL_SPAWN": design}
    spawn_seconds = None
    with client.setup_kernel(env=env):
        sampler = Sampler(client.km.provisioner.pid, interval)
        sampler.start()
        try:
            for index, cell in enumerate(nb.cells):
                start = time.perf_counter()
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                if cell.cell_type == "code" and cell.source.startswith("%fl_spawn"):
                    spawn_seconds = time.perf_counter() - start
        finally:
            sampler.halt.set()
            sampler.join()
        # then, not sampled: a later %fl_spawn in the same kernel (the template is warm now)
        extra = nbformat.v4.new_code_cell("%fl_controller start\n%fl_spawn " + str(clients))
        nb.cells.append(extra)
        start = time.perf_counter()
        client.execute_cell(extra, len(nb.cells) - 1, execution_count=client.code_cells_executed + 1)
        again = time.perf_counter() - start
    text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "global model test accuracy" in text, text[-2000:]
    assert spawn_seconds is not None, "the notebook has no %fl_spawn cell"
    assert "error" not in [out.get("output_type") for out in extra.get("outputs", [])], extra.outputs
    return {
        "peak": sampler.peak,
        "parts": sampler.parts,
        "spawn": spawn_seconds,
        "again": again,
        "samples": sampler.samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="notebook runs per design, interleaved")
    parser.add_argument("--rounds", type=int, default=3, help="the notebook's ROUNDS")
    parser.add_argument("--clients", type=int, default=4, help="the notebook's CLIENTS")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between PSS samples")
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {d: [] for d in DESIGNS}
    for i in range(args.repeat):
        for design in DESIGNS:
            result = run_notebook(design, args.rounds, args.clients, args.interval)
            runs[design].append(result)
            parts = result["parts"]
            print(
                f"run {i + 1} {design:>9}: peak {result['peak'] / MIB:6.0f} MiB (kernel {parts['kernel'] / MIB:.0f}, "
                f"template {parts['template'] / MIB:.0f}, clients {parts['clients'] / MIB:.0f}; "
                f"{parts['processes']} processes besides the kernel), %fl_spawn {result['spawn']:.2f} s, "
                f"later %fl_spawn {result['again']:.2f} s, "
                f"{result['samples']} samples",
                flush=True,
            )

    base = runs[DESIGNS[0]]
    base_peak = max(r["peak"] for r in base)
    base_spawn = statistics.median(r["spawn"] for r in base)
    print(
        f"\nquickstart, {args.clients} clients, ROUNDS={args.rounds}, {args.repeat} run(s) each; "
        f"PSS of the kernel and all its descendants, sampled every {args.interval:g} s"
    )
    base_again = statistics.median(r["again"] for r in base)
    print(
        f"{'design':>10} {'peak PSS MiB':>12} {'kernel':>7} {'template':>8} {'clients':>7} {'ratio':>6} "
        f"{'spawn->joined s':>15} {'ratio':>6} {'later spawn s':>13} {'ratio':>6}"
    )
    for design in DESIGNS:
        top = max(runs[design], key=lambda r: r["peak"])
        spawn = statistics.median(r["spawn"] for r in runs[design])
        again = statistics.median(r["again"] for r in runs[design])
        parts = top["parts"]
        print(
            f"{design:>10} {top['peak'] / MIB:>12.0f} {parts['kernel'] / MIB:>7.0f} {parts['template'] / MIB:>8.0f} "
            f"{parts['clients'] / MIB:>7.0f} {top['peak'] / base_peak:>6.2f} {spawn:>15.2f} "
            f"{spawn / base_spawn:>6.2f} {again:>13.2f} {again / base_again:>6.2f}"
        )
    peak = max(r["peak"] for r in runs["template"]) / MIB
    print(f"\ntemplate: peak {peak:.0f} MiB, {'under' if peak < 1024 else 'OVER'} the 1024 MiB target")


if __name__ == "__main__":
    main()
