"""The Federation panel's server side (nbfl.jupyter.server_extension) in a real Jupyter server, and
the wheel that ships the panel prebuilt: what a browser's requests get, with and without
Jupyter's token, and what ``pip install`` of the wheel gives a machine without node."""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

import nbfl

import environments
from helpers import FAST, free_port, slow_adder, small_model, until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A Jupyter server with nbfl's server extension enabled as the package installs it
    (jupyter_server_config.d), and a runtime folder shared with this test's controllers."""
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--ServerApp.allow_root=True",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        until(lambda: proc.poll() is not None or _up(f"{base}/api/status?token={token}"), timeout=120)
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        yield base, token
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except OSError:
        return False


def call(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    """One request as the panel makes it (token in the Authorization header); (status, JSON body)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text.startswith(b"{") else {}


def test_the_panel_routes_answer_with_jupyters_token_only(server, controller_factory, client_factory):
    base, token = server
    ctl = controller_factory(small_model())
    for name in ("a", "b"):
        client_factory(ctl.endpoint, name, tasks=slow_adder())
    run = ctl.start(rounds=100_000)
    url = f"{base}/nbfl/federation"
    for wrong in (None, "guess", token[:-1]):
        assert call(url, wrong)[0] == 403
        assert call(f"{url}/{ctl.control.id}/stop", wrong, {})[0] == 403
    assert not run.done()

    until(lambda: (call(url, token)[1]["entries"][0]["status"]["run"] or {}).get("round", 0) >= 2)
    status, body = call(url, token)
    (entry,) = body["entries"]
    assert status == 200 and entry["id"] == ctl.control.id and entry["kind"] == "controller" and not entry["error"]
    assert "token" not in entry and "address" not in entry  # the control socket's secrets stay on the server
    assert sorted(c["name"] for c in entry["status"]["clients"]) == ["a", "b"]

    assert call(f"{url}/nobody-1-1/stop", token, {}) == (404, {"message": "nobody-1-1 is not running any more"})
    assert call(f"{url}/{ctl.control.id}/remove", token, {"name": "zed"}) == (
        409,
        {"message": "no client named 'zed' has joined"},
    )
    status, body = call(f"{url}/{ctl.control.id}/stop", token, {})
    assert status == 200 and body["message"].startswith("stopping the run")
    run.wait(timeout=30)
    assert run.stopped
    assert call(f"{url}/{ctl.control.id}/remove", token, {"name": "b"})[0] == 200
    until(
        lambda: (
            [c["state"] for c in call(url, token)[1]["entries"][0]["status"]["clients"] if c["name"] == "b"]
            == ["removed"]
        )
    )


def test_a_participant_is_listed_and_leaves_through_the_server(server, controller_factory):
    base, token = server
    ctl = controller_factory(small_model())
    client = nbfl.Client(ctl.endpoint, "alice", tasks=slow_adder(0), control=True, **FAST).start()
    try:
        kinds = sorted(e["kind"] for e in call(f"{base}/nbfl/federation", token)[1]["entries"])
        assert kinds == ["controller", "participant"]
        status, body = call(f"{base}/nbfl/federation/{client._control.id}/leave", token, {})
        assert status == 200 and body["message"].startswith("alice is leaving")
        assert client.wait(timeout=10)
    finally:
        client.stop()


def test_a_controller_that_does_not_answer_is_listed_with_why(server, tmp_path):
    base, token = server
    stuck = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import nbfl, numpy as np, os, signal, sys\nc = nbfl.Controller(weights={'w': np.zeros(2)})\n"
            "print(c.control.id, flush=True)\nos.kill(os.getpid(), signal.SIGSTOP)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": os.environ["JUPYTER_RUNTIME_DIR"]},
    )
    try:
        cid = stuck.stdout.readline().strip()
        started = time.monotonic()
        (entry,) = call(f"{base}/nbfl/federation", token)[1]["entries"]
        assert entry["id"] == cid and entry["status"] is None and entry["error"] == "did not answer within 2 s"
        assert time.monotonic() - started < 30  # the server is not stuck with it
    finally:
        stuck.kill()
        stuck.wait()


def no_node(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds nothing but an empty folder: no node, no npm."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    env = {**os.environ, "PATH": str(tmp_path / "bin")}
    assert shutil.which("node", path=env["PATH"]) is None and shutil.which("npm", path=env["PATH"]) is None
    return env


def test_the_panel_is_committed_as_built_from_its_sources():
    """nbfl/labextension is committed so that no install needs node; scripts/build_panel.sh
    stamps it with the hash of the sources it was built from. A change to the TypeScript
    without a rebuild fails here rather than shipping the old panel."""
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "panel_source.py"), "--check"])
    assert check.returncode == 0, (
        "extensions/federation changed since nbfl/labextension was built: bash scripts/build_panel.sh"
    )


def test_a_clone_without_the_built_panel_still_installs_and_says_so(tmp_path):
    """A copy of the sources without nbfl/labextension (and no node): the wheel builds,
    without the panel, and the build says why in one line instead of failing."""
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(".venv", "build", "dist", "out", "node_modules", ".git", "labextension"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(copy)],
        env=no_node(tmp_path),
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    said = [
        line for line in (built.stdout + built.stderr).splitlines() if "without the JupyterLab Federation panel" in line
    ]
    assert len(said) == 1 and "scripts/build_panel.sh" in said[0], built.stdout[-3000:]
    (wheel,) = tmp_path.glob("nbfl_jupyter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nbfl/__init__.py" in names and not any("labextension" in n for n in names)


def test_the_wheel_ships_the_panel_prebuilt_and_enabled(tmp_path):
    """``pip wheel .`` where PATH has no node, then that wheel installed into an environment
    whose PATH has no node either: ``jupyter labextension list`` and ``jupyter server
    extension list`` show it enabled."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        env=no_node(tmp_path),
    )
    (wheel,) = tmp_path.glob("nbfl_jupyter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "nbfl_jupyter-0.1.0.data/data/"
    assert f"{data}share/jupyter/labextensions/nbfl-federation/package.json" in names
    assert f"{data}share/jupyter/labextensions/nbfl-federation/install.json" in names
    assert any(n.startswith(f"{data}share/jupyter/labextensions/nbfl-federation/static/remoteEntry.") for n in names)
    assert f"{data}etc/jupyter/jupyter_server_config.d/nbfl.json" in names

    venv = environments.venv("newest")  # jupyterlab and nbfl's dependencies, from binder/requirements.txt
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
    )
    bare = {"PATH": str(venv / "bin"), "HOME": str(tmp_path), "JUPYTER_PLATFORM_DIRS": "1"}  # no node anywhere
    assert shutil.which("node", path=bare["PATH"]) is None
    lab = subprocess.run(
        [str(venv / "bin" / "jupyter"), "labextension", "list"], env=bare, capture_output=True, text=True
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", lab.stdout + lab.stderr)
    listed = [line.split() for line in text.splitlines() if "nbfl-federation" in line]
    assert listed == [["nbfl-federation", "v0.1.0", "enabled", "OK", "(python,", "nbfl-jupyter)"]], text
    assert f"{venv}/share/jupyter/labextensions" in text  # from the wheel's install, not the working tree
    server = subprocess.run(
        [str(venv / "bin" / "jupyter"), "server", "extension", "list"], env=bare, capture_output=True, text=True
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", server.stdout + server.stderr)  # without its colours
    assert "nbfl enabled" in text and "nbfl 0.1.0 OK" in text, text
