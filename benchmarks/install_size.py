"""What installing nbfl costs, by role: packages, MiB on disk and seconds, each in a fresh venv.

- ``before (issue 19)``: the baseline, measured in the same run: the dependencies nbfl
  had before its install was split by role (torch, scikit-learn, jupyterlab, ipywidgets
  and matplotlib for everyone), with the local CPU torch.
- ``participant``: ``pip install nbfl_jupyter-*.whl``: numpy, pyzmq, safetensors. Joins,
  trains the digits model with the numpy trainer, runs ``%%fl_task`` code.
- ``participant + torch``: ``...whl[torch]`` (the local CPU build of torch, installed
  first as the README says: PyPI's default on Linux is a CUDA build of several GB).
- ``course``: ``...whl[course]``: the notebooks, JupyterLab, torch and TenSEAL.

Sizes are of the venv after the install minus the empty venv (pip and setuptools), so
they include the ``.pyc`` files pip compiles; packages likewise exclude the venv's own.
Seconds depend on the network and pip's cache; sizes and counts do not.

    python benchmarks/install_size.py              # builds the wheel with scripts/build.sh first
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # the CPU build on this project's machines
BEFORE = [
    TORCH,
    "numpy>=1.24",
    "pyzmq>=25",
    "safetensors>=0.4",
    "scikit-learn>=1.2",
    "jupyterlab>=4",
    "ipywidgets>=8",
    "matplotlib>=3.7",
]
MIB = 1024 * 1024


def wheel() -> Path:
    subprocess.run(["bash", str(ROOT / "scripts" / "build.sh")], check=True, stdout=subprocess.DEVNULL)
    (built,) = (ROOT / "dist").glob("nbfl_jupyter-*.whl")
    return built


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def packages(venv: Path) -> set[str]:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {p["name"].lower() for p in json.loads(out)}


LARGEST = """
import importlib.metadata as m, os
sizes = {d.metadata["Name"]: sum(os.path.getsize(f.locate()) for f in d.files or [] if os.path.isfile(f.locate()))
         for d in m.distributions()}
name = max(sizes, key=sizes.get)
print(name, sizes[name])
"""


def largest(venv: Path) -> str:
    """The distribution that takes the most disk, with its MiB."""
    name, size = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LARGEST], capture_output=True, text=True, check=True
    ).stdout.split()
    return f"{name} {int(size) / MIB:.0f}"


def measure(steps: list[list[str]]) -> tuple[int, float, float, str]:
    """Install ``steps`` (pip arguments, one install each) into a fresh venv: packages, MiB,
    seconds, and the largest package."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        empty, own = size(venv), packages(venv)
        start = time.perf_counter()
        for args in steps:
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                check=True,
                stderr=subprocess.DEVNULL,
            )
        seconds = time.perf_counter() - start
        return len(packages(venv) - own), (size(venv) - empty) / MIB, seconds, largest(venv)


def main() -> None:
    built = wheel()
    profiles = {
        "before (issue 19)": [BEFORE],
        "participant": [[str(built)]],
        "participant + torch": [[TORCH], [f"{built}[torch]"]],
        "course": [[TORCH], [f"{built}[course]"]],
    }
    rows = {name: measure(steps) for name, steps in profiles.items()}
    _, base_mib, _, _ = rows["before (issue 19)"]
    print(f"{'install':<22}{'packages':>9}{'MiB':>9}{'seconds':>9}{'MiB / before':>14}  largest package (MiB)")
    for name, (count, mib, seconds, big) in rows.items():
        print(f"{name:<22}{count:>9}{mib:>9.1f}{seconds:>9.1f}{mib / base_mib:>14.3f}  {big}")


if __name__ == "__main__":
    main()
