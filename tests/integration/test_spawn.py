"""Spawned clients forked from the warm template (nbfl.launch.template), and the separate-process
way beside it: real processes on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

import nbfl
from nbfl.launch import template as tpl
from nbfl.launch.spawn import ClientProcess, spawn_clients, stop_clients
from nbfl.launch.template import TemplateChild, get_template
from nbfl.participant.models import DigitsMLP

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the template forks on Linux only")


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(pids, timeout=120):
    """A bound for a hung test, not a timing claim."""
    deadline = time.monotonic() + timeout
    while any(running(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if running(p)]}"
        time.sleep(0.1)


@pytest.fixture
def controller():
    with nbfl.Controller("tcp://127.0.0.1:0", DigitsMLP()) as ctl:
        yield ctl


def test_clients_are_forked_from_the_template_each_in_its_own_session(controller):
    procs = spawn_clients(controller.endpoint, 2, epochs=1)
    try:
        template = get_template()
        assert template is not None and template.threads == 1  # single-threaded when it forks
        assert all(isinstance(p, TemplateChild) for p in procs)
        assert len(os.listdir(f"/proc/{template.pid}/task")) == 1
        for proc in procs:
            assert psutil.Process(proc.pid).ppid() == template.pid
            assert os.getsid(proc.pid) == proc.pid  # a session of its own: a kernel interrupt misses it
        assert os.getsid(template.pid) == template.pid != os.getsid(0)
        controller.wait_for_clients(2, timeout=120)
        record = controller.run(1, min_clients=2, timeout=300)[0]
        assert record.status == "ok" and sorted(record.clients) == ["site-1", "site-2"]
        assert all(p.poll() is None for p in procs)
        assert "joined" in procs[0].tail()
    finally:
        for proc in procs:
            proc.kill()
    assert [p.wait(60) for p in procs] == [-signal.SIGKILL] * 2


def test_the_template_is_reused_by_a_second_spawn(controller):
    first = spawn_clients(controller.endpoint, 1, name_prefix="a")
    second = spawn_clients(controller.endpoint, 1, name_prefix="b")
    try:
        parents = {psutil.Process(p.pid).ppid() for p in first + second}
        assert parents == {get_template().pid}
        controller.wait_for_clients(2, timeout=120)
    finally:
        for proc in first + second:
            proc.terminate()
    assert [p.wait(60) for p in first + second] == [-signal.SIGTERM] * 2


def test_a_killed_client_is_seen_and_the_others_go_on(controller):
    procs = spawn_clients(controller.endpoint, 3, epochs=1)
    try:
        controller.wait_for_clients(3, timeout=120)
        victim = procs[0]
        assert victim.poll() is None and victim.returncode is None
        os.kill(victim.pid, signal.SIGKILL)  # from outside, as the OOM killer would
        assert victim.wait(60) == -signal.SIGKILL
        assert victim.poll() == -signal.SIGKILL == victim.returncode
        victim.kill()  # reaped already: nothing to signal, no error
        record = controller.run(1, min_clients=2, timeout=300)[0]
        assert record.ok and "site-1" not in record.clients, record
        assert all(p.poll() is None for p in procs[1:])
    finally:
        stop_clients(procs, timeout=1)
    assert all(p.poll() is not None for p in procs)


def test_a_client_that_fails_at_start_reports_its_exit_code_and_log():
    proc = spawn_clients("tcp://127.0.0.1:9", 1, partition="bogus")[0]
    assert isinstance(proc, TemplateChild)
    assert proc.wait(60) == 2  # argparse's error, as a separate process would exit
    assert "--partition bogus" in proc.tail()


def test_wait_times_out_like_popen(controller):
    proc = spawn_clients(controller.endpoint, 1)[0]
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(0.01)
    finally:
        proc.kill()
        proc.wait(60)


def test_a_client_runs_in_the_folder_and_environment_of_the_spawn(controller, tmp_path, monkeypatch):
    get_template()  # started before the change, so the change must travel with the request
    monkeypatch.chdir(tmp_path)
    proc = spawn_clients(controller.endpoint, 1)[0]
    try:
        controller.wait_for_clients(1, timeout=120)  # so it is past its setup
        assert os.readlink(f"/proc/{proc.pid}/cwd") == str(tmp_path)
    finally:
        proc.kill()
        proc.wait(60)


def test_separate_processes_remain_selectable(controller, monkeypatch):
    procs = spawn_clients(controller.endpoint, 1, template=False)
    monkeypatch.setenv("NBFL_SPAWN", "processes")
    procs += spawn_clients(controller.endpoint, 1, name_prefix="env")
    try:
        assert all(isinstance(p, ClientProcess) for p in procs)
        assert {psutil.Process(p.pid).ppid() for p in procs} == {os.getpid()}
        controller.wait_for_clients(2, timeout=120)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(60)


def test_a_template_that_cannot_start_falls_back_to_processes(controller, monkeypatch, caplog):
    monkeypatch.setattr(tpl, "BOOT", "import sys; sys.exit('no template today')")
    monkeypatch.setattr(tpl, "_template", None)
    monkeypatch.setattr(tpl, "_template_failed", None)
    with caplog.at_level(logging.WARNING, logger="nbfl"):
        procs = spawn_clients(controller.endpoint, 1)
    try:
        assert isinstance(procs[0], ClientProcess)
        assert "no template process" in caplog.text and "no template today" in caplog.text
        assert get_template() is None  # not tried again in this process
    finally:
        procs[0].kill()
        procs[0].wait(60)


PARENT = """
import json, sys, time, nbfl
from nbfl.participant.models import DigitsMLP
from nbfl.launch.spawn import spawn_clients
from nbfl.launch.template import get_template
ctl = nbfl.Controller("tcp://127.0.0.1:0", DigitsMLP())
procs = spawn_clients(ctl.endpoint, 2)
ctl.wait_for_clients(2, timeout=120)
deadline = time.monotonic() + 120  # welcomed, not only registered: a client still waiting
while not all("joined" in p.tail() for p in procs) and time.monotonic() < deadline:  # for its
    time.sleep(0.05)  # welcome would wait out --wait (Client.start does not notice stop())
print(json.dumps({"template": get_template().pid, "clients": [p.pid for p in procs]}), flush=True)
time.sleep(600)
"""


def test_the_template_and_its_clients_leave_when_their_parent_dies(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line, "the parent process did not spawn its clients"
        pids = json.loads(line)
        assert all(running(p) for p in [pids["template"], *pids["clients"]])
    finally:
        parent.kill()  # no goodbye: its controller cannot say bye
        parent.wait()
    wait_until_gone([pids["template"], *pids["clients"]])


def test_in_a_kernel_the_template_and_its_clients_outlive_an_interrupt():
    """%fl_spawn in a real kernel: the clients' parent is the kernel's template, in a
    session of its own, so the stop button (SIGINT to the kernel's process group) misses both."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    outputs: list[str] = []
    try:
        reply = kc.execute_interactive("%load_ext nbfl\n%fl_controller start\n%fl_spawn 2", timeout=300)
        assert reply["content"]["status"] == "ok"
        kernel = km.provisioner.pid
        kc.execute_interactive(
            "print([p.pid for p in get_ipython().magics_manager.registry['ControllerMagics'].session.spawned])",
            timeout=60,
            output_hook=lambda msg: outputs.append(msg["content"].get("text", "")),
        )
        clients = [psutil.Process(int(pid)) for pid in json.loads("".join(outputs))]
        assert len(clients) == 2
        template = psutil.Process(clients[0].ppid())
        assert template.ppid() == kernel and "nbfl.launch.template" in " ".join(template.cmdline())
        assert {c.ppid() for c in clients} == {template.pid}
        assert os.getsid(template.pid) != os.getsid(kernel) and os.getpgid(template.pid) != os.getpgid(kernel)
        km.interrupt_kernel()
        reply = kc.execute_interactive("import time; time.sleep(0.5)", timeout=60)  # the interrupt has landed
        assert all(running(p.pid) for p in [template, *clients])
        reply = kc.execute_interactive("%fl_round 1", timeout=300)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    wait_until_gone([template.pid, *(c.pid for c in clients)])
