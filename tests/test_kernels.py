"""Two real Jupyter kernels: one is the controller, the other joins with %fl_join."""

import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

TASK = """
import os, nbfl
STARTED, RELEASE = {started!r}, {release!r}

@nbfl.task("train")
def train(weights, ctx):
    open(STARTED, "w").close()
    while not os.path.exists(RELEASE) and not ctx.abort.wait(0.05):
        pass
    return nbfl.Update({{k: v + 1 for k, v in weights.items()}}, num_samples=1)
"""


def run(kc, code, timeout=120):
    """Execute ``code``; return (status, text of all outputs)."""
    texts = []

    def hook(msg):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            texts.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data", "update_display_data"):
            texts.append(content["data"].get("text/html") or content["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            texts.append("\n".join(content["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"]["status"], "".join(texts)


def collect(kc, msg_id, timeout=120):
    """Outputs of an earlier ``kc.execute`` until its kernel goes idle."""
    texts, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream":
            texts.append(content["text"])
        elif msg["msg_type"] in ("display_data", "update_display_data"):
            texts.append(content["data"].get("text/html", ""))
        elif msg["msg_type"] == "error":
            texts.append("\n".join(content["traceback"]))
        elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
            return "".join(texts)
    raise TimeoutError("the kernel did not finish")


def wait_for(path: Path, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.fixture
def kernels(tmp_path):
    started = []
    try:
        for _ in range(2):
            started.append(start_new_kernel(kernel_name="python3"))
        (km_a, kc_a), (km_b, kc_b) = started
        assert run(kc_a, "%load_ext nbfl\n%fl_controller start")[0] == "ok"
        status, endpoint = run(kc_a, "print(nbfl_controller.endpoint)")
        code = TASK.format(started=str(tmp_path / "started"), release=str(tmp_path / "release"))
        assert run(kc_b, code)[0] == "ok"
        status, text = run(kc_b, f"%load_ext nbfl\n%fl_join {endpoint.strip()} --name participant --data none")
        assert status == "ok", text
        yield (km_a, kc_a), (km_b, kc_b), tmp_path
    finally:
        for km, kc in started:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def test_participant_kernel_stays_usable_while_training(kernels):
    (_, kc_a), (_, kc_b), tmp = kernels
    msg_id = kc_a.execute("%fl_round 2")
    wait_for(tmp / "started")
    status, text = run(kc_b, "print(1 + 1, nbfl_client.state)")
    assert (status, text.strip()) == ("ok", "2 training")
    (tmp / "release").touch()
    output = collect(kc_a, msg_id)
    assert "participant" in output and "stopped" not in output
    status, text = run(kc_a, "print([r['status'] for r in nbfl_controller.history], nbfl_controller.weights['fc2.bias'][:1])")
    assert text.startswith("['ok', 'ok']")
    assert run(kc_b, "print(nbfl_client.rounds_done)")[1].strip() == "2"


def test_interrupt_during_fl_round_leaves_the_controller_usable(kernels):
    (km_a, kc_a), (_, kc_b), tmp = kernels
    run(kc_a, "import numpy as np; before = {k: v.copy() for k, v in nbfl_controller.weights.items()}")
    msg_id = kc_a.execute("%fl_round 3")
    wait_for(tmp / "started")
    km_a.interrupt_kernel()  # SIGINT, as the notebook's stop button sends
    output = collect(kc_a, msg_id)
    assert "stopped" in output and "told to abort" in output
    time.sleep(2)
    assert run(kc_b, "print(nbfl_client.state)")[1].strip() == "idle"  # not still training
    status, text = run(kc_a, "print(all(np.array_equal(before[k], v) for k, v in nbfl_controller.weights.items()))")
    assert text.strip() == "True"  # the global model is the last complete one
    (tmp / "release").touch()
    assert run(kc_a, "%fl_round 1")[0] == "ok"
    status, text = run(kc_a, "print(nbfl_controller.history[-1]['status'])")
    assert text.strip() == "ok"
