"""nbfl on Python 3.10 and 3.13, the ends of its range, without torch (this project's
machines have a torch wheel only for 3.11): a venv with the participant install
(``pip install .``: numpy, pyzmq, safetensors), then a workshop controller and two
participants that join with its line and train with the numpy trainer, all as
``nbfl`` processes over real sockets, for 3 FedAvg rounds."""

import glob
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from environments import ROOT, run

VERSIONS = ["3.10", "3.13"]


def interpreter(version: str) -> str | None:
    """``pythonX.Y`` on PATH, else pyenv's (its shims answer only for the global versions)."""
    found = [
        p
        for p in [shutil.which(f"python{version}")]
        if p and subprocess.run([p, "-V"], capture_output=True).returncode == 0
    ]
    found += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    return found[0] if found else None


def participant_venv(version: str) -> Path:
    python = interpreter(version)
    if python is None:
        if os.environ.get("CI"):
            pytest.fail(f"no Python {version} on this machine; CI's machines have it")
        pytest.skip(f"no Python {version} here")
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = ROOT / "build" / f"env-py{version}-{key}"
    if not (venv / "ready").exists():
        run([python, "-m", "venv", "--clear", str(venv)])
        (venv / "ready").write_text("")
    run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--force-reinstall",
            "--no-cache-dir",
            ".",
        ]
    )
    return venv


@pytest.mark.parametrize("version", VERSIONS)
def test_a_workshop_trains_with_numpy_participants_on_python(version, tmp_path):
    venv = participant_venv(version)
    py = str(venv / "bin" / "python")
    said = subprocess.run(
        [py, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=True
    )
    assert said.stdout.strip() == str(tuple(map(int, version.split("."))))
    for absent in ("torch", "sklearn", "IPython"):  # the participant install brings none of them
        assert subprocess.run([py, "-c", f"import {absent}"], capture_output=True).returncode != 0, absent

    nbfl = str(venv / "bin" / "nbfl")
    env = {**os.environ, "NBFL_KEYS": str(tmp_path / "keys")}
    controller = subprocess.Popen(
        [
            nbfl,
            "controller",
            "--workshop",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--capacity",
            "2",
            "--min-clients",
            "2",
            "--rounds",
            "3",
            "--join-wait",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    clients = []
    try:
        lines = []
        for line in controller.stdout:
            lines.append(line)
            code = re.search(r"nbfl client (nbfl://\S+) --name", line)
            if code:
                break
        assert code, "".join(lines)
        for name in ("ada", "grace"):
            clients.append(
                subprocess.Popen(
                    [nbfl, "client", code.group(1), "--name", name],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                )
            )
        out = "".join(lines) + controller.stdout.read()
        assert controller.wait(timeout=300) == 0, out
    finally:
        for proc in [controller, *clients]:
            proc.kill()
            proc.wait()
    joined = re.search(r"2 clients joined: (\w+), (\w+)", out)
    assert joined and sorted(joined.groups()) == ["ada", "grace"], out
    rounds = re.findall(r"^\s+(\d)\s+([\d.]+)\s+[\d.]+\s+2\s", out, re.M)
    assert [r for r, _ in rounds] == ["1", "2", "3"], out
    accuracy = float(re.search(r"3 rounds completed; final accuracy ([\d.]+)", out).group(1))
    assert accuracy > 0.6, out
    client_out = clients[0].stdout.read()
    assert "numpy" in client_out, client_out  # it says which trainer it trains with
