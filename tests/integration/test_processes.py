"""Separate client processes on 127.0.0.1: the README's demo, and a client killed mid-round."""

import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np

import nbfl

from helpers import FAST, small_model

WORKER = """
import sys, threading, nbfl
started = sys.argv[3]
def train(weights, ctx):
    if ctx.round >= 2 and sys.argv[2] == "victim":
        open(started, "w").close()
        threading.Event().wait(600)  # stuck until killed
    return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=1)
nbfl.Client(sys.argv[1], sys.argv[2], tasks={"train": train}, heartbeat_interval=0.1, heartbeat_timeout=2.0).run()
"""


def test_demo_reaches_90_percent_on_digits():
    """The README's first command: 4 client processes, Dirichlet(0.5) digits, 10 FedAvg rounds."""
    out = subprocess.run(
        [sys.executable, "-m", "nbfl", "demo", "--clients", "4", "--rounds", "10"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rounds = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+(\d)\s", out.stdout, re.M)
    assert [int(r[0]) for r in rounds] == list(range(1, 11))
    assert all(r[2] == "4" for r in rounds), out.stdout
    final = float(re.search(r"final accuracy ([\d.]+)", out.stdout).group(1))
    assert final >= 0.90, out.stdout


def test_sigkilled_client_does_not_hang_the_round(tmp_path):
    w0 = small_model()
    with nbfl.Controller("tcp://127.0.0.1:0", w0, **FAST) as ctl:
        marker = tmp_path / "victim-training"
        procs = {
            name: subprocess.Popen([sys.executable, "-c", WORKER, ctl.endpoint, name, str(marker)])
            for name in ("victim", "a", "b")
        }
        try:
            ctl.wait_for_clients(3, timeout=60)
            assert ctl.run(1, min_clients=2, timeout=120)[0].status == "ok"

            def kill_when_training():
                while not marker.exists():
                    threading.Event().wait(0.02)
                os.kill(procs["victim"].pid, signal.SIGKILL)

            killer = threading.Thread(target=kill_when_training)
            killer.start()
            record = ctl.run(1, min_clients=2, timeout=120)[0]  # round 2: the victim dies in it
            killer.join()
            assert record.status == "ok"
            assert "lost" in record.failed["victim"]
            assert sorted(record.clients) == ["a", "b"]
            assert {c.name: c.state for c in ctl.clients}["victim"] == "lost"
            np.testing.assert_allclose(ctl.weights["w"], w0["w"] + 2, rtol=1e-6)

            nxt = ctl.run(1, min_clients=2, timeout=120)[0]  # the next round runs with the survivors
            assert nxt.status == "ok" and sorted(nxt.clients) == ["a", "b"]
            np.testing.assert_allclose(ctl.weights["w"], w0["w"] + 3, rtol=1e-6)
        finally:
            for proc in procs.values():
                proc.kill()
                proc.wait()
