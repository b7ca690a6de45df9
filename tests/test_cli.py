"""The command line as a user types it: nbfl controller and nbfl client processes."""

import re
import socket
import subprocess
import sys

import pytest

NBFL = [sys.executable, "-m", "nbfl"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_controller_and_two_clients_from_the_command_line():
    controller = subprocess.Popen(
        [*NBFL, "controller", "--port", "0", "--min-clients", "2", "--rounds", "3", "--algorithm", "scaffold"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    endpoint = re.match(r"controller at (tcp://\S+)", controller.stdout.readline()).group(1)
    clients = [
        subprocess.Popen([*NBFL, "client", endpoint, "--name", f"site-{i}", "--index", str(i), "--num-clients", "2"])
        for i in range(2)
    ]
    out, err = controller.communicate(timeout=300)
    assert controller.returncode == 0, err
    assert len(re.findall(r"^\s+\d\s+[\d.]+\s+[\d.]+\s+2\s", out, re.M)) == 3, out
    assert "final accuracy" in out
    assert [c.wait(timeout=60) for c in clients] == [0, 0]  # they leave when the controller says bye


def test_a_workshop_from_the_command_line_joins_with_the_printed_line():
    controller = subprocess.Popen(
        [*NBFL, "controller", "--workshop", "--host", "127.0.0.1", "--port", "0", "--capacity", "5",
         "--min-clients", "2", "--rounds", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = [controller.stdout.readline() for _ in range(5)]
    command = next(ln.strip() for ln in lines if ln.strip().startswith("or runs: nbfl client nbfl://"))
    code = command.split()[4]  # "or runs: nbfl client CODE --name YOUR_NAME"
    assert "CurveZMQ" in "".join(lines)
    clients = [subprocess.Popen([*NBFL, "client", code, "--name", name]) for name in ("ada", "grace")]
    out, err = controller.communicate(timeout=300)
    assert controller.returncode == 0, out + err
    assert "2 rounds completed" in out, out
    assert [c.wait(timeout=60) for c in clients] == [0, 0]
    refused = subprocess.run([*NBFL, "client", code.rsplit("/", 1)[0] + "/wrongtoken1", "--name", "x", "--wait", "5"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 1  # the controller is gone: nobody answers the old line


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--clients", "0"], "at least 1"),
        (["demo", "--algorithm", "fedsgd"], "invalid choice"),
        (["demo", "--partition", "zipf:2"], "unknown partition"),
        (["demo", "--partition", "dirichlet:0"], "alpha must be positive"),
        (["client", "tcp://nowhere", "--name", "x"], "tcp://HOST:PORT"),
        (["client", "tcp://127.0.0.1:99999", "--name", "x"], "port from 1 to 65535"),
        (["client", "tcp://127.0.0.1:5555", "--name", "x", "--index", "2", "--num-clients", "2"], "--index"),
        (["client", "nbfl://10.0.0.5:5555/short/token1234", "--name", "x"], "not a join code"),
        (["controller", "--workshop", "--kit", "somewhere"], "does not take --kit"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(args, message):
    out = subprocess.run([*NBFL, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_client_without_a_controller_says_so_at_once():
    """Refused connections end the wait for a welcome (within seconds, not --wait's 300)."""
    out = subprocess.run(
        [*NBFL, "client", f"tcp://127.0.0.1:{free_port()}", "--name", "x"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1 and "nothing answers at tcp://127.0.0.1:" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_a_controller_that_cannot_listen_says_what_to_change_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([*NBFL, "controller", "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"cannot listen on tcp://127.0.0.1:{port}: Address already in use; another program" in out.stderr
