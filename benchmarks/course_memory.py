"""Memory of the whole course in one session, as a learner on Binder runs it: notebooks
01 to 06 one after another, each in its own kernel, every kernel left running.

Binder's pod limit is 2 GB for everything in it. Each notebook runs with nbclient in a
kernel started here (so nbclient does not shut it down when the notebook ends), with its
own defaults (03's instructor notebook with its local sites; the participant notebook
needs a room and is left out). A thread sums the PSS (``/proc/PID/smaps_rollup``:
shared pages divided among the processes that map them) of every kernel and all their
descendants every ``--interval`` seconds. The table shows, per notebook, its own peak
(its kernel and descendants while it ran), what it keeps once it ended (sampled after
``--settle`` seconds), and the session's total at its peak; the baseline, measured in
the same run, is one idle kernel (started, nothing run).

    python benchmarks/course_memory.py
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import nbformat
import psutil
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from notebook_memory import MIB, pss_bytes

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
COURSE = [
    "01_quickstart.ipynb",
    "02_algorithms.ipynb",
    "03_workshop_instructor.ipynb",
    "04_privacy.ipynb",
    "05_bring_your_own_executor.ipynb",
    "06_statistics_and_evaluation.ipynb",
]
BINDER_LIMIT = 2048  # MiB


def tree_pss(pid: int) -> int:
    """PSS of a process and all its descendants; 0 if it is gone."""
    try:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    return sum(pss_bytes(p.pid) for p in family)


class Session(threading.Thread):
    """Samples every kernel of the session: the peak of their sum, and each kernel's own peak."""

    def __init__(self, interval: float):
        super().__init__(name="course-sampler", daemon=True)
        self.interval, self.kernels = interval, {}  # notebook -> kernel pid
        self.peak, self.own_peak = 0, {}
        self.lock, self.halt = threading.Lock(), threading.Event()

    def add(self, name: str, pid: int) -> None:
        with self.lock:
            self.kernels[name] = pid
            self.own_peak[name] = 0

    def run(self) -> None:
        while not self.halt.is_set():
            with self.lock:
                kernels = dict(self.kernels)
            sizes = {name: tree_pss(pid) for name, pid in kernels.items()}
            with self.lock:
                for name, size in sizes.items():
                    self.own_peak[name] = max(self.own_peak[name], size)
                self.peak = max(self.peak, sum(sizes.values()))
            self.halt.wait(self.interval)


def start_kernel() -> KernelManager:
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(NOTEBOOKS))
    return km


def run(name: str, session: Session, kernels: list[KernelManager]) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    km = start_kernel()
    kernels.append(km)
    session.add(name, km.provisioner.pid)
    NotebookClient(nb, km=km, timeout=1200, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, (name, errors[0].get("ename"), errors[0].get("evalue"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between PSS samples")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after a notebook before its memory is read")
    args = parser.parse_args()
    kernels: list[KernelManager] = []
    idle = start_kernel()
    try:
        time.sleep(args.settle)
        baseline = tree_pss(idle.provisioner.pid)
        idle.shutdown_kernel(now=True)
        session = Session(args.interval)
        session.start()
        kept, seconds = {}, {}
        for name in COURSE:
            start = time.perf_counter()
            run(name, session, kernels)
            seconds[name] = time.perf_counter() - start
            time.sleep(args.settle)
            kept[name] = tree_pss(session.kernels[name])
            print(
                f"{name}: {seconds[name]:.0f} s, peak {session.own_peak[name] / MIB:.0f} MiB, "
                f"keeps {kept[name] / MIB:.0f} MiB",
                flush=True,
            )
        session.halt.set()
        session.join()
    finally:
        for km in kernels:
            km.shutdown_kernel(now=True)
    print(f"\nthe course in one session, every kernel left running; PSS sampled every {args.interval:g} s")
    print(f"{'notebook':<38}{'peak MiB':>9}{'kept MiB':>9}{'kept / idle kernel':>20}{'seconds':>9}")
    for name in COURSE:
        print(
            f"{name:<38}{session.own_peak[name] / MIB:>9.0f}{kept[name] / MIB:>9.0f}"
            f"{kept[name] / baseline:>20.2f}{seconds[name]:>9.0f}"
        )
    total = session.peak / MIB
    print(f"{'idle kernel (baseline)':<38}{baseline / MIB:>9.0f}{baseline / MIB:>9.0f}{1:>20.2f}")
    print(f"\nsession peak {total:.0f} MiB: {'under' if total < BINDER_LIMIT else 'OVER'} Binder's {BINDER_LIMIT} MiB")


if __name__ == "__main__":
    main()
