"""The Python environments the course is tested in, each built from scratch as its users get it.

- ``newest``: ``pip install -r binder/requirements.txt`` in a new venv, the newest
  versions the registry has (what a new user gets today).
- ``binder``: what Binder has. repo2docker first installs its own Python 3.11 base
  environment (from its conda lock), then runs ``pip install -r binder/requirements.txt``,
  which keeps the versions already there. ``BINDER_LOCK`` is that lock's Jupyter stack.
- ``oldest``: the lowest version pyproject.toml allows of every dependency of the
  ``course`` extra (read from pyproject.toml, so the test follows the pins), installed as
  constraints.

Two liberties, both about torch: this machine reaches PyPI only, so the line adding
PyTorch's CPU index is left out of the requirements, and the local CPU build of torch
(2.13.0, the one on this machine's disk) is installed first in every environment;
``torch>=2.0``'s lower end is not tested here (PyPI's torch 2.0 is a multi-GB CUDA build).

Environments are kept in build/ while their recipe is unchanged; nbfl itself is
reinstalled from the working tree each session.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "binder" / "requirements.txt"
PYPROJECT = ROOT / "pyproject.toml"
LOCAL_TORCH = "torch==2.13.0"
# repo2docker's Python 3.11 environment (repo2docker/buildpacks/conda/environment.py-3.11.lock)
BINDER_LOCK = [
    "jupyterlab==4.4.9",
    "ipykernel==7.0.1",
    "ipywidgets==8.1.7",
    "jupyter_server==2.17.0",
    "notebook==7.4.7",
]
# what the tests drive a notebook with, beside what the course installs
TOOLS = ["nbclient>=0.8", "nbformat>=5"]
NAMES = ("newest", "binder", "oldest")


def lowest_pins(extra: str = "course") -> list[str]:
    """``name==lowest`` for nbfl's dependencies and those of ``extra`` (recursively), from pyproject.toml."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    pins: list[str] = []

    def add(requirements: list[str]) -> None:
        for requirement in requirements:
            inner = re.fullmatch(r"nbfl-jupyter\[([\w,]+)\]", requirement)
            if inner:
                for name in inner.group(1).split(","):
                    add(extras[name])
                continue
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([\w.]+)", requirement.split(";")[0].strip())
            assert match, f"pyproject.toml: {requirement!r} has no lower bound to test"
            if match.group(1) != "torch":
                pins.append(f"{match.group(1)}=={match.group(2)}")

    add(project["dependencies"])
    add(extras[extra])
    return sorted(set(pins))


def recipe(name: str) -> list[str]:
    """What is installed before the requirements file, as pip arguments."""
    if name == "binder":
        return BINDER_LOCK
    if name == "oldest":
        return lowest_pins()
    assert name == "newest", name
    return []


@functools.cache
def venv(name: str) -> Path:
    """The environment ``name`` (see the module's docstring), with an ipykernel kernel named ``nbfl-NAME``."""
    pins = recipe(name)
    key = hashlib.sha256("\n".join([*pins, REQUIREMENTS.read_text(), PYPROJECT.read_text()]).encode()).hexdigest()[:12]
    path = ROOT / "build" / f"env-{name}-{key}"
    python = path / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not (path / "ready").exists():
        run([sys.executable, "-m", "venv", "--clear", str(path)])
        run([*pip, LOCAL_TORCH, *TOOLS, *pins])
        lines = [ln for ln in REQUIREMENTS.read_text().splitlines() if not ln.startswith("--extra-index-url")]
        local = path / "requirements-local.txt"
        local.write_text("\n".join(lines) + "\n")
        if name == "oldest":  # the lowest pins hold while the requirements are installed
            constraints = path / "constraints.txt"
            constraints.write_text("\n".join(pins) + "\n")
            run([*pip, "-r", str(local), "-c", str(constraints)])
        else:
            run([*pip, "-r", str(local)])
        run([str(python), "-m", "ipykernel", "install", "--prefix", str(path), "--name", kernel_name(name)])
        (path / "ready").write_text("")
    run([*pip, "--no-deps", "--force-reinstall", "."])
    return path


def kernel_name(name: str) -> str:
    return f"nbfl-{name}"


@functools.cache
def kernel(name: str) -> str:
    """The kernel of :func:`venv` ``name``, made findable through JUPYTER_PATH."""
    share = str(venv(name) / "share" / "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [share, os.environ.get("JUPYTER_PATH")]))
    return kernel_name(name)


def versions(name: str, packages: list[str]) -> dict[str, str]:
    """The installed versions of ``packages`` in environment ``name``."""
    code = "import importlib.metadata as m, sys; print('\\n'.join(m.version(p) for p in sys.argv[1:]))"
    out = subprocess.run(
        [str(venv(name) / "bin" / "python"), "-c", code, *packages], capture_output=True, text=True, check=True
    ).stdout.split()
    return dict(zip(packages, out))


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
