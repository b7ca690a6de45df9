"""Real Jupyter kernels: one is the controller, another joins with %fl_join, or the
controller's kernel spawns its clients with %fl_spawn, as a notebook user does."""

import os
import re
import time
from pathlib import Path

import psutil
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
    status, text = run(
        kc_a, "print([str(r.status) for r in nbfl_controller.history], nbfl_controller.weights['fc2.bias'][:1])"
    )
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
    status, text = run(kc_a, "print(nbfl_controller.history[-1].status)")
    assert text.strip() == "ok"


SPAWNED_TASK = """%%fl_task train
import os, time, nbfl
def train(weights, ctx):
    open(os.path.join({folder!r}, f"started-{{ctx.round}}-{{os.getpid()}}"), "w").close()
    while not os.path.exists(os.path.join({folder!r}, "release")) and not ctx.abort.triggered:
        time.sleep({pause})
        if {pause} > 0.01:
            break
    return nbfl.Update({{k: v + 1 for k, v in weights.items()}}, num_samples=1)
"""


@pytest.fixture
def spawning_kernel(tmp_path):
    """A controller kernel with two %fl_spawn clients whose task waits for a file ``release``
    (or, with ``pause``, sleeps that long): the first round's training can be caught mid-way."""
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        for code in ["%load_ext nbfl", "%fl_controller start", "%fl_spawn 2 --partition iid"]:
            status, text = run(kc, code)
            assert status == "ok", text

        def task(pause: float = 0.01) -> None:
            status, text = run(kc, SPAWNED_TASK.format(folder=str(tmp_path), pause=pause))
            assert status == "ok", text

        yield km, kc, tmp_path, task
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def spawned_pids(kc) -> list[int]:
    code = "print([p.pid for p in get_ipython().magics_manager.registry['ControllerMagics'].session.spawned])"
    return [int(pid) for pid in re.findall(r"\d+", run(kc, code)[1])]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_interrupt_during_fl_round_keeps_the_spawned_clients(spawning_kernel):
    """Jupyter interrupts the kernel's whole process group: spawned clients must not be in it."""
    km, kc, tmp, task = spawning_kernel
    task()
    pids = spawned_pids(kc)
    assert len(pids) == 2 and all(running(p) for p in pids)
    msg_id = kc.execute("%fl_round 3")
    wait_for_files = time.monotonic() + 120
    while len(list(tmp.glob("started-1-*"))) < 2:  # both clients are training round 1
        assert time.monotonic() < wait_for_files, "the clients never started training"
        time.sleep(0.05)
    km.interrupt_kernel()  # SIGINT to the kernel's process group, as the notebook's stop button sends
    output = collect(kc, msg_id)
    assert "stopped" in output and "told to abort" in output
    assert all(running(p) for p in pids), "an interrupt of the kernel ended a spawned client"
    text = run(
        kc,
        "print(sorted(c.name for c in nbfl_controller.live_clients()), "
        "sorted({c.state for c in nbfl_controller.clients}))",
    )[1]
    assert text.strip() == "['site-1', 'site-2'] ['idle']"  # joined, and not shown as still training
    (tmp / "release").touch()
    status, text = run(kc, "%fl_round 2")
    assert status == "ok", text
    text = run(kc, "print([(str(r.status), sorted(r.clients)) for r in nbfl_controller.history])")[1]
    assert text.strip() == ("[('interrupted', []), ('ok', ['site-1', 'site-2']), ('ok', ['site-1', 'site-2'])]")
    assert spawned_pids(kc) == pids  # the same processes did the work


def dashboard_says(kc, text: str, timeout: float = 120) -> bool:
    """Whether a widget update carrying ``text`` arrives (how a background dashboard changes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["msg_type"] == "comm_msg" and text in str(msg["content"]["data"].get("state", {}).get("value", "")):
            return True
    return False


def test_a_background_run_leaves_the_kernel_free(spawning_kernel):
    km, kc, tmp, task = spawning_kernel
    task(pause=0.2)
    status, text = run(kc, "%fl_round 30 --background")
    assert status == "ok", text
    assert dashboard_says(kc, "round 2 of 30"), "the dashboard did not update after its cell ended"
    status, text = run(kc, "print(1 + 1, nbfl_run.done())")  # the kernel answers while rounds go on
    assert (status, text.strip()) == ("ok", "2 False")
    status, text = run(kc, "%fl_clients")
    assert status == "ok" and "site-1" in text and "site-2" in text
    first = int(run(kc, "print(nbfl_run.round)")[1])
    deadline = time.monotonic() + 120
    while int(run(kc, "print(nbfl_run.round)")[1]) == first:  # read in later cells, the round moves on
        assert time.monotonic() < deadline, "the background run did not advance"
        time.sleep(0.2)
    status, text = run(kc, "%fl_history")
    assert status == "ok" and "fedavg" in text
    msg_id = kc.execute("%fl_wait")
    time.sleep(1)
    km.interrupt_kernel()  # ends the waiting, not the run
    assert "stopped waiting; the run goes on" in collect(kc, msg_id)
    assert run(kc, "print(nbfl_run.done())")[1].strip() == "False"
    status, text = run(kc, "%fl_stop")
    assert status == "ok" and "stopped after" in text, text
    text = run(kc, "print(nbfl_run.done(), len(nbfl_run.history) < 30, nbfl_controller.active_run)")[1]
    assert text.strip() == "True True None"
    status, text = run(kc, "%fl_round 2")  # and the next run works
    assert status == "ok" and "final" in text, text


def test_spawned_clients_leave_when_their_kernel_dies():
    """Out of the kernel's process group, spawned clients must still notice it is gone."""
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        status, text = run(kc, "%load_ext nbfl\n%fl_controller start\n%fl_spawn 2")
        assert status == "ok", text
        pids = spawned_pids(kc)
        assert len(pids) == 2 and all(running(p) for p in pids)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)  # killed: no goodbye from its controller
    deadline = time.monotonic() + 60
    while any(running(p) for p in pids):
        assert time.monotonic() < deadline, "a spawned client outlived its kernel"
        time.sleep(0.2)


def test_a_restarted_controller_kernel_resumes_and_the_participant_rejoins_by_itself(tmp_path):
    """The controller's kernel is restarted (its process ends, state and all); started again
    with --resume on the same port, it has the model, the round number and, without anyone
    touching the participant's notebook, the participant."""
    started = []
    try:
        for _ in range(2):
            started.append(start_new_kernel(kernel_name="python3"))
        (km_a, kc_a), (_, kc_b) = started
        folder = tmp_path / "checkpoints"
        status, text = run(
            kc_a,
            f"%load_ext nbfl\n%fl_controller start --checkpoint-dir {folder}\n"
            "print('PORT', nbfl_controller.endpoint.rsplit(':', 1)[1])",
        )
        assert status == "ok", text
        port = re.search(r"PORT (\d+)", text).group(1)
        status, text = run(kc_b, f"%load_ext nbfl\n%fl_join tcp://127.0.0.1:{port} --name laptop")
        assert status == "ok", text
        assert run(kc_a, "%fl_round 3")[0] == "ok"
        before = run(kc_a, "print(nbfl_controller.weights['fc2.bias'].tolist())")[1].strip()
        km_a.restart_kernel(now=True)
        kc_a.wait_for_ready(timeout=120)
        status, text = run(
            kc_a,
            f"%load_ext nbfl\n%fl_controller start --resume {folder} --port {port}\n"
            "print(nbfl_controller.weights['fc2.bias'].tolist())",
        )
        assert status == "ok" and "3 rounds done" in text and before in text, text
        status, text = run(
            kc_a,
            "nbfl_controller.wait_for_clients(1, timeout=120)\n%fl_round 2\n"
            "print([(r.round, str(r.status), sorted(r.clients)) for r in nbfl_controller.history])",
        )
        assert status == "ok", text
        assert "(4, 'ok', ['laptop']), (5, 'ok', ['laptop'])" in text, text
        assert run(kc_b, "print(nbfl_client.rounds_done, nbfl_client.state)")[1].strip() == "5 idle"
    finally:
        for km, kc in started:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def test_a_participants_status_line_keeps_telling_the_truth_after_its_cell_ended(tmp_path):
    """%fl_join's cell ends at once; the rounds come later. Its status line is a widget, so
    each round reaches the notebook after the cell ended (a display update would not)."""
    import nbfl
    from nbfl.participant.builtin import digits_model

    weights, evaluate = digits_model(trainer="numpy")
    km, kc = start_new_kernel(
        kernel_name="python3", env={**os.environ, "NBFL_TRAINER": "numpy", "NBFL_KEYS": str(tmp_path)}
    )
    try:
        with nbfl.Controller("tcp://127.0.0.1:0", weights, evaluate=evaluate) as ctl:
            status, text = run(kc, f"%load_ext nbfl\n%fl_join {ctl.endpoint} --name laptop --index 0 --num-clients 2")
            assert status == "ok", text
            ctl.run(2, timeout=120)  # after the join's cell ended
            assert dashboard_says(kc, "2 rounds done"), "the status line did not follow the rounds"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
