"""The command line as a user types it: nbfl controller and nbfl client processes."""

import re
import socket
import subprocess
import sys

import pytest

from helpers import free_port

NBFL = [sys.executable, "-m", "nbfl"]


def test_controller_and_two_clients_from_the_command_line():
    controller = subprocess.Popen(
        [*NBFL, "controller", "--port", "0", "--min-clients", "2", "--rounds", "3", "--algorithm", "scaffold"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
        [
            *NBFL,
            "controller",
            "--workshop",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--capacity",
            "5",
            "--min-clients",
            "2",
            "--rounds",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = [controller.stdout.readline() for _ in range(5)]
    command = next(ln.strip() for ln in lines if ln.strip().startswith("or runs: nbfl client nbfl://"))
    code = command.split()[4]  # "or runs: nbfl client CODE --name YOUR_NAME"
    assert "CurveZMQ" in "".join(lines)
    clients = [subprocess.Popen([*NBFL, "client", code, "--name", name]) for name in ("ada", "grace")]
    out, err = controller.communicate(timeout=300)
    assert controller.returncode == 0, out + err
    assert "2 rounds completed" in out, out
    assert [c.wait(timeout=60) for c in clients] == [0, 0]
    refused = subprocess.run(
        [*NBFL, "client", code.rsplit("/", 1)[0] + "/wrongtoken1", "--name", "x", "--wait", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
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
        [*NBFL, "client", f"tcp://127.0.0.1:{free_port()}", "--name", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
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


def _client_process(code: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*NBFL, "client", code, "--name", name, "--trainer", "numpy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _line(proc: subprocess.Popen, pattern: str) -> str:
    """The next line of ``proc``'s output that matches ``pattern`` (the lines before it are skipped)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r}:\n{''.join(seen)}")


def test_a_terminal_participant_prints_its_share_each_round_and_why_it_stopped():
    """`nbfl client` in a terminal: a line when the workshop assigns its share, one per round
    trained, and at the end why it stopped (removed, the controller stopped, or it left)."""
    import signal

    import nbfl
    from nbfl.participant.builtin import digits_model

    weights, evaluate = digits_model(trainer="numpy")
    with nbfl.Controller(
        weights=weights, evaluate=evaluate, workshop=nbfl.Workshop(capacity=3, host="127.0.0.1")
    ) as ctl:
        code = str(ctl.join_code)
        procs = {name: _client_process(code, name) for name in ("ada", "grace", "alan")}
        try:
            for name, proc in procs.items():
                assert re.search(rf"^{name}: share \d/3: \d+ samples, mostly \d, \d and \d$", _line(proc, "share")), (
                    name
                )
            ctl.wait_for_clients(3, timeout=60)
            ctl.run(2, timeout=120)
            for name, proc in procs.items():
                first = _line(proc, r"round \d+ done")
                assert re.match(rf"{name}: round 1 done, local accuracy [\d.]+, loss [\d.]+", first), first
                assert re.match(
                    rf"{name}: round 2 done, .*global accuracy [\d.]+ after round 1", _line(proc, "round 2")
                ), name
            ctl.remove("ada")
            assert (
                _line(procs["ada"], "stopped")
                == "ada: stopped (removed by whoever runs the controller (the instructor)); 2 rounds trained\n"
            )
            assert procs["ada"].wait(30) == 0
            procs["alan"].send_signal(signal.SIGINT)  # Ctrl-C
            assert _line(procs["alan"], "stopped") == "alan: stopped (left); 2 rounds trained\n"
        finally:
            ctl.close()
        assert _line(procs["grace"], "stopped") == "grace: stopped (the controller stopped); 2 rounds trained\n"
        for proc in procs.values():
            proc.wait(30)
            proc.stdout.close()


def test_a_terminal_name_with_spaces_is_one_name_quoted_or_not():
    import nbfl
    from nbfl.participant.builtin import digits_model

    weights, evaluate = digits_model(trainer="numpy")
    with nbfl.Controller("tcp://127.0.0.1:0", weights, evaluate=evaluate) as ctl:
        procs = [
            subprocess.Popen(
                [*NBFL, "client", ctl.endpoint, "--name", *name, "--trainer", "numpy"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in (["Grace", "Hopper"], ["Ada Lovelace"])
        ]  # as typed unquoted, and quoted
        try:
            ctl.wait_for_clients(2, timeout=60)
            assert sorted(c.name for c in ctl.clients) == ["Ada Lovelace", "Grace Hopper"]
        finally:
            ctl.close()
            for proc in procs:
                proc.wait(30)
