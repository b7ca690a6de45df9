"""The %fl_* magics in-process (IPython's test shell) against real client processes."""

import base64
import contextlib
import csv
import html
import json
import re

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output

from nbfl.data import load_digits_split
from nbfl.notebook.magics import session_of

from helpers import adder, small_model, until


@pytest.fixture
def ip():
    start_ipython()  # the test shell, once per process; later calls return None
    from IPython import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "nbfl")
    yield shell
    shell.run_line_magic("unload_ext", "nbfl")


@contextlib.contextmanager
def shown_as_in_a_notebook(ip):
    """Capture what a cell displays, with HTML as a notebook asks for it (the test shell shows only text)."""
    types = ip.display_formatter.active_types
    ip.display_formatter.active_types = ["text/plain", "text/html"]
    try:
        with capture_output() as shown:
            yield shown
    finally:
        ip.display_formatter.active_types = types


def magics(shell):
    """The state the loaded magics share (nbfl.notebook.magics.session)."""
    return session_of(shell)


def test_every_magic_has_help(ip):
    for name in [
        "fl_controller",
        "fl_spawn",
        "fl_join",
        "fl_round",
        "fl_clients",
        "fl_history",
        "fl_cross_site",
        "fl_stats",
    ]:
        doc = ip.find_line_magic(name).__doc__
        assert doc and doc.strip(), name
    assert "--partition" in ip.find_line_magic("fl_spawn").__doc__  # magic_arguments' usage text
    assert ip.find_cell_magic("fl_task").__doc__


@pytest.mark.parametrize(
    "magic, line, message",
    [
        ("fl_controller", "launch", "invalid choice"),
        ("fl_round", "3", "no controller"),
        ("fl_round", "three", "invalid int"),
        ("fl_spawn", "2", "no controller"),
        ("fl_join", "tcp://127.0.0.1:1", "--name"),
        ("fl_controller", "start --model no_such_var", "no variable"),
    ],
)
def test_bad_arguments_raise_usage_errors(ip, magic, line, message):
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic(magic, line)


def test_controller_spawn_task_round_history(ip, capsys):
    ip.run_line_magic("fl_controller", "start --min-clients 2")
    with pytest.raises(UsageError, match="already runs"):
        ip.run_line_magic("fl_controller", "start")
    ctl = ip.user_ns["nbfl_controller"]
    with pytest.raises(UsageError, match="no client"):
        ip.run_line_magic("fl_round", "1")
    ip.run_line_magic("fl_spawn", "2 --partition iid")
    assert sorted((c.name, c.share) for c in ctl.live_clients()) == [("site-1", "1/2"), ("site-2", "2/2")]
    for proc in magics(ip).spawned:  # what a client prints goes to its log, not into whichever cell runs
        until(lambda: "joined" in proc.tail())
    ip.run_cell_magic(
        "fl_task",
        "train",
        "import nbfl\n"
        "def train(weights, ctx):\n"
        "    return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=len(ctx.data[1]),\n"
        "                       metrics={'samples_seen': len(ctx.data[1])})\n",
    )
    before = {k: v.copy() for k, v in ctl.weights.items()}
    ip.run_line_magic("fl_round", "2")
    assert [r.status for r in ctl.history] == ["ok", "ok"]
    # the shipped code ran on the clients' own data (iid halves of the training split)
    samples = sorted(m["samples_seen"] for m in ctl.history[-1].clients.values())
    assert samples[0] + samples[1] == len(load_digits_split()[1]) and abs(samples[0] - samples[1]) <= 1
    np.testing.assert_allclose(ctl.weights["fc1.bias"], before["fc1.bias"] + 2, rtol=1e-5)
    assert "final accuracy" in capsys.readouterr().out
    ip.run_line_magic("fl_history", "")
    ip.run_line_magic("fl_clients", "")
    ip.run_line_magic("fl_controller", "stop")
    assert magics(ip).controller is None


def test_a_failing_task_is_shown_once_with_the_client_name_and_its_own_lines(ip):
    ip.run_line_magic("fl_controller", "start")
    ip.run_line_magic("fl_spawn", "2")
    ip.run_cell_magic(
        "fl_task",
        "train",
        "def train(weights, ctx):\n"
        "    if ctx.client == 'site-1':\n"
        "        raise ValueError('bad site data')\n"
        "    return weights\n",
    )
    with shown_as_in_a_notebook(ip) as shown:  # what the cell shows, updates of the dashboard's handles included
        ip.run_line_magic("fl_round", "2")
    assert [r.outcome for r in ip.user_ns["nbfl_controller"].history] == ["ok, 1 of 2 failed"] * 2
    html = [out.data.get("text/html", "") for out in shown.outputs]
    failures = [s for s in html if "failed</summary>" in s][-1]  # the dashboard's last update
    assert failures.count("<details") == 1  # the same failure in two rounds is shown once
    assert "ValueError: bad site data: client site-1 (rounds 1, 2) failed" in failures
    assert "Traceback" in failures and "raise ValueError(&#x27;bad site data&#x27;)" in failures  # its source line
    assert "frames inside nbfl not shown" in failures and "client.py" not in failures


def test_task_code_that_imports_what_a_client_lacks_gets_one_sentence_in_the_client_table(ip, tmp_path, monkeypatch):
    (tmp_path / "nbfl_no_such_package.py").write_text("")  # installed where the instructor is, not on the site
    monkeypatch.syspath_prepend(str(tmp_path))
    ip.run_line_magic("fl_controller", "start")
    ip.run_line_magic("fl_spawn", "1")
    ip.run_cell_magic("fl_task", "train", "import nbfl_no_such_package\ndef train(weights, ctx):\n    return weights\n")
    with shown_as_in_a_notebook(ip) as shown:
        ip.run_line_magic("fl_round", "1")
    ctl = ip.user_ns["nbfl_controller"]
    sentence = "the task's code imports 'nbfl_no_such_package', which is not installed on this machine: install it here to take part"
    assert ctl.history[-1].failed == {"site-1": sentence}  # the sentence alone, no traceback of the import
    (client,) = ctl.clients
    assert client.last_error == sentence
    with shown_as_in_a_notebook(ip) as table:
        ip.run_line_magic("fl_clients", "")
    assert f"last task failed (idle): {html.escape(sentence)}" in table.outputs[-1].data["text/html"]
    assert any(sentence.replace("'", "&#x27;") in o.data.get("text/html", "") for o in shown.outputs)


def test_join_runs_in_the_background(ip):
    import nbfl

    with nbfl.Controller("tcp://127.0.0.1:0", {"w": np.zeros(3, np.float32)}) as ctl:
        ip.run_cell(
            "import nbfl\n"
            "@nbfl.task('train')\n"
            "def train(weights, ctx):\n"
            "    return {k: v + 1 for k, v in weights.items()}\n"
        )
        ip.run_line_magic("fl_join", f"{ctl.endpoint} --name laptop --data none")
        client = ip.user_ns["nbfl_client"]
        assert client.state == "idle" and [c.name for c in ctl.clients] == ["laptop"]
        ctl.run(2, timeout=60)
        np.testing.assert_allclose(ctl.weights["w"], 2.0)
        assert client.rounds_done == 2
        client.stop()


@pytest.mark.parametrize(
    "typed", ['--name "Grace Hopper"', "--name 'Grace Hopper'", "--name $who", "--name Grace Hopper"]
)
def test_a_name_with_a_space_is_kept_as_typed_without_quotes(ip, typed):
    import nbfl

    ip.user_ns["who"] = "Grace Hopper"  # NAME = "Grace Hopper", then --name $NAME
    with nbfl.Controller("tcp://127.0.0.1:0", {"w": np.zeros(3, np.float32)}) as ctl:
        ip.run_line_magic("fl_join", f"{ctl.endpoint} {typed} --data none")
        try:
            assert [c.name for c in ctl.clients] == ["Grace Hopper"]
        finally:
            ip.user_ns["nbfl_client"].stop()


def test_reload_ext_closes_the_old_federation_and_starts_clean(ip):
    ip.run_line_magic("fl_controller", "start")
    old = ip.user_ns["nbfl_controller"]
    ip.run_line_magic("reload_ext", "nbfl")
    assert old._closed
    assert magics(ip).controller is None
    ip.run_line_magic("fl_controller", "start")  # works again after the reload
    assert ip.user_ns["nbfl_controller"] is not old
    ip.run_line_magic("fl_controller", "stop")


def test_algorithms_cross_site_and_statistics_from_magics(ip):
    ip.run_line_magic("fl_controller", "start --min-clients 3")
    ip.run_line_magic("fl_spawn", "3 --partition iid")
    ctl = ip.user_ns["nbfl_controller"]
    ip.run_line_magic("fl_round", "2 --algorithm fedopt --with momentum=0.5")
    ip.run_line_magic("fl_round", "1 --algorithm fedopt --with momentum=0.5")
    (workflow,) = magics(ip).workflows.values()
    assert workflow.optimizer.momentum == 0.5 and workflow.optimizer.steps == 3  # state kept across cells
    ip.run_line_magic("fl_round", "1 --algorithm fedopt --with momentum=0.5 --reset")
    assert magics(ip).workflows[("fedopt", "train", (("momentum", 0.5),))].optimizer.steps == 1
    with pytest.raises(UsageError, match="KEY=VALUE"):
        ip.run_line_magic("fl_round", "1 --with mu")
    with pytest.raises(UsageError, match="fedprox.*unexpected keyword"):
        ip.run_line_magic("fl_round", "1 --algorithm fedprox --with nonsense=1")
    ip.run_line_magic("fl_round", "1 --algorithm scaffold")
    ip.run_line_magic("fl_round", "1 --filter dp:clip=0.5,noise_multiplier=0.1 --filter exclude:names=fc2.bias")
    assert ctl.history[-1].filters["site-1"] == [
        {"name": "dp", "clip": 0.5, "noise_multiplier": 0.1},
        {"name": "exclude", "names": ["fc2.bias"]},
    ]
    assert ctl.history[-1].privacy["epsilon"] > 0
    with pytest.raises(UsageError, match="unknown filter 'zip'"):
        ip.run_line_magic("fl_round", "1 --filter zip")
    assert [r.workflow for r in ctl.history] == ["fedopt"] * 4 + ["scaffold", "fedavg"]
    assert all(r.status == "ok" for r in ctl.history)

    ip.run_line_magic("fl_cross_site", "")
    matrix = ctl.history[-1].notes["cross_site"]
    assert len(matrix["models"]) == 4 and len(matrix["sites"]) == 3
    ip.run_line_magic("fl_stats", "--bins 4 --min-count 5")
    stats = ip.user_ns["nbfl_statistics"]
    x_train = load_digits_split()[0]
    assert stats["count"].tolist() == [len(x_train)] * 64
    np.testing.assert_allclose(stats["mean"], x_train.astype(np.float64).mean(0), atol=1e-9)
    ip.run_line_magic("fl_controller", "stop")


def test_run_settings_do_not_leak_from_one_magic_to_the_next(ip):
    """--min-clients 2 is %fl_round's default; %fl_stats (one round of its own) does not change it."""
    ip.run_line_magic("fl_controller", "start --min-clients 2")
    ip.run_line_magic("fl_spawn", "1")
    ip.run_line_magic("fl_stats", "--min-count 5")  # its own run, with its own settings: one client will do
    with pytest.raises(UsageError, match="1 of 2 clients have joined"):
        ip.run_line_magic("fl_round", "1")
    ip.run_line_magic("fl_cross_site", "")
    with pytest.raises(UsageError, match="1 of 2 clients have joined"):
        ip.run_line_magic("fl_round", "1")
    ip.run_line_magic("fl_spawn", "1")
    ip.run_line_magic("fl_round", "1")
    run = ip.user_ns["nbfl_run"]
    assert run.min_clients == 2 and run.history[0].ok and len(run.history[0].clients) == 2
    ip.run_line_magic("fl_controller", "stop")


def test_fl_round_compress_moves_a_quarter_of_the_bytes_and_the_history_shows_them(ip):
    ip.run_line_magic("fl_controller", "start --compress float16")  # the controller's default for its runs
    ip.run_line_magic("fl_spawn", "2 --partition iid")
    ip.run_line_magic("fl_round", "1 --compress none")
    ip.run_line_magic("fl_round", "1 --compress int8")
    ip.run_line_magic("fl_round", "1")
    plain, int8, half = (r.traffic for r in ip.user_ns["nbfl_controller"].history)
    assert all(0.25 * p <= i <= 0.32 * p and 0.5 * p <= h <= 0.55 * p for p, i, h in zip(plain, int8, half))
    kilobytes = re.findall(r"<td>(\d+\.\d) / (\d+\.\d)</td>", shown_html(ip, "fl_history", ""))
    shown = [float(x) * 1000 for pair in kilobytes for x in pair]
    assert shown == pytest.approx([*plain, *int8, *half], abs=51)  # kB out / in of each round, to 0.1 kB
    ip.run_line_magic("fl_controller", "stop")


def test_fl_spawn_on_gpus_that_are_not_there_says_so_at_once(ip):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: scripts/gpu_check.sh covers it")
    ip.run_line_magic("fl_controller", "start")
    # told as soon as the clients failed (the log's last lines), not after --wait (beyond the test's timeout)
    with pytest.raises(
        UsageError, match=r"0 of 2 clients joined(.|\n)*device 'cuda:1' asked for, but torch .* sees 0 CUDA GPU"
    ):
        ip.run_line_magic("fl_spawn", "2 --gpus 1 --wait 600")
    ip.run_line_magic("fl_controller", "stop")


SLOW_TASK = """import nbfl
def train(weights, ctx):
    ctx.abort.wait(0.2)  # a slow site: rounds take a while
    return nbfl.Update(weights, num_samples=1)
"""


def two_slow_sites(ip):
    ip.run_line_magic("fl_controller", "start")
    ip.run_line_magic("fl_spawn", "2 --partition iid")
    ip.run_cell_magic("fl_task", "train", SLOW_TASK)


def test_background_round_status_wait_and_stop(ip, capsys):
    two_slow_sites(ip)
    ip.run_line_magic("fl_round", "3 --background")  # returns at once
    run = ip.user_ns["nbfl_run"]
    assert not run.done()
    with pytest.raises(UsageError, match="a run is going"):
        ip.run_line_magic("fl_round", "1")
    ip.run_line_magic("fl_status", "")
    ip.run_line_magic("fl_wait", "")
    assert [r.status for r in run.history] == ["ok"] * 3 and "final accuracy" in capsys.readouterr().out
    ip.run_line_magic("fl_round", "100 --background")
    run = ip.user_ns["nbfl_run"]
    ip.run_line_magic("fl_stop", "")
    assert run.done() and run.stopped and len(run.history) < 100
    ip.run_line_magic("fl_round", "1")  # the next round runs
    assert ip.user_ns["nbfl_run"].history[0].ok
    ip.run_line_magic("fl_controller", "stop")


def test_a_failed_background_run_is_raised_by_fl_wait(ip):
    two_slow_sites(ip)
    ip.run_line_magic("fl_round", "1000 --background --min-clients 2")
    run = ip.user_ns["nbfl_run"]
    magics(ip).spawned[0].kill()  # a site's machine dies: too few clients for the next round
    with pytest.raises(UsageError, match="the run failed: 1 of 2 clients joined"):
        ip.run_line_magic("fl_wait", "")
    assert run.summary().startswith("failed after") and "1 of 2 clients" in run.summary()  # as its dashboard says
    ip.run_line_magic("fl_controller", "stop")


def html_shown(data: dict) -> str:
    """What an output shows as HTML: its HTML, or an HTML widget's value (mid-run, %fl_status
    shows a live dashboard of widgets)."""
    import ipywidgets

    if "text/html" in data:
        return data["text/html"]
    view = data.get("application/vnd.jupyter.widget-view+json")
    widget = ipywidgets.Widget.widgets.get(view["model_id"]) if view else None
    return widget.value if isinstance(widget, ipywidgets.HTML) else ""


def shown_html(ip, magic, line):
    """The HTML a magic displays, as a notebook asks for it."""
    types = ip.display_formatter.active_types
    ip.display_formatter.active_types = ["text/plain", "text/html"]
    try:
        with capture_output() as shown:
            ip.run_line_magic(magic, line)
    finally:
        ip.display_formatter.active_types = types
    return "".join(_html_of(out.data) for out in shown.outputs)


def _html_of(data: dict) -> str:
    """An output's HTML; for an HTML widget (a participant's status line), the widget's value."""
    view = data.get("application/vnd.jupyter.widget-view+json")
    if view is not None:
        from ipywidgets.widgets.widget import _instances

        return getattr(_instances.get(view["model_id"]), "value", "")
    return data.get("text/html", "")


def test_a_workshop_from_the_magics_join_line_shares_remove_and_rotate(ip):
    started = shown_html(ip, "fl_controller", "start --workshop --host 127.0.0.1 --capacity 4")
    line = re.search(r"class='nbfl-join-line'[^>]*>(%fl_join [^<]+)<", started).group(1)
    assert line.startswith("%fl_join nbfl://127.0.0.1:") and "copy</button>" in started
    assert line in shown_html(ip, "fl_controller", "status")  # shown again for latecomers
    ctl = ip.user_ns["nbfl_controller"]
    # a participant pastes the line with their name (here the same kernel joins, as a second notebook would)
    ip.run_line_magic("fl_join", line.split(" ", 1)[1].replace("YOUR_NAME", "ada"))
    client = ip.user_ns["nbfl_client"]
    until(lambda: client.share is not None and ctl.clients[0].samples > 0)
    [ada] = ctl.clients
    assert (ada.name, ada.share, ada.accepts_code) == ("ada", "1/4", True)
    assert ada.samples == client.samples and sum(ada.labels) == ada.samples
    again = shown_html(ip, "fl_join", "")  # after a page reload: the status line again
    assert "ada" in again and "share 1/4" in again
    ip.run_line_magic("fl_round", "1")
    assert ctl.history[-1].ok and ctl.history[-1].traffic == ctl.clients[0].traffic != (0, 0)
    for labels in ("", "--partition dirichlet:0.1 --clients 30"):  # ada's own counts; a partition previewed
        with capture_output() as shown:
            ip.run_line_magic("fl_labels", labels)
        assert any("image/png" in out.data for out in shown.outputs)
    table = shown_html(ip, "fl_clients", "")
    assert re.search(r"<tr><td>ada</td><td>1/4</td><td title='own \(opts in\)'>own \(opts in\)</td><td>cpu</td>", table)
    rotated = shown_html(ip, "fl_controller", "remove ada")
    assert "removed ada" in rotated and line not in rotated  # a new line, since ada saw the old one
    until(lambda: client.state == "stopped")
    assert "removed" in client.last_error
    with pytest.raises(UsageError, match="removed"):
        ip.run_line_magic("fl_join", line.split(" ", 1)[1].replace("YOUR_NAME", "ada"))
    ip.run_line_magic("fl_controller", "stop")


def test_a_participant_sees_a_silent_controller_and_can_leave(ip):
    import nbfl

    ctl = nbfl.Controller("tcp://127.0.0.1:0", {"w": np.zeros(3, np.float32)})
    try:
        ip.run_line_magic("fl_join", f"{ctl.endpoint} --name laptop --data none")
        client = ip.user_ns["nbfl_client"]
        ctl.io.stop()  # the controller's kernel died: no goodbye, no heartbeats
        until(lambda: client.controller_lost is not None, timeout=120)
        assert "has not answered since" in shown_html(ip, "fl_status", "")
        with pytest.raises(UsageError, match="%fl_leave"):
            ip.run_line_magic("fl_join", f"{ctl.endpoint} --name laptop --data none")
        ip.run_line_magic("fl_leave", "")
        assert client.state == "stopped"
    finally:
        ctl.close()


def test_a_controller_started_again_with_resume_carries_on(ip, tmp_path):
    ip.run_line_magic("fl_controller", f"start --checkpoint-dir {tmp_path}")
    ip.run_line_magic("fl_spawn", "1")
    ip.run_line_magic("fl_round", "2")
    before = {k: v.copy() for k, v in ip.user_ns["nbfl_controller"].weights.items()}
    ip.run_line_magic("fl_controller", "stop")
    shown = shown_html(ip, "fl_controller", f"start --resume {tmp_path}")
    assert "2 rounds done" in shown
    ctl = ip.user_ns["nbfl_controller"]
    assert all(np.array_equal(ctl.weights[k], v) for k, v in before.items()) and len(ctl.history) == 2
    ip.run_line_magic("fl_spawn", "1")
    assert [c.name for c in ctl.live_clients()] == ["site-1"]  # its own name again, not site2-1
    ip.run_line_magic("fl_round", "1")
    assert [r.round for r in ctl.history] == [1, 2, 3]
    ip.run_line_magic("fl_controller", "stop")


@pytest.mark.parametrize("room", ["", "--workshop --host 127.0.0.1 --capacity 4"])
def test_spawned_sites_are_named_after_a_restart_and_come_back_under_their_names(ip, tmp_path, room, monkeypatch):
    """Issue 20, point 5: the sites %fl_spawn started end with the kernel. After Kernel >
    Restart, %fl_controller start --resume names them and says how to start them again, and
    %fl_spawn gives them their names back (not site2-1); a further %fl_spawn, new names. In
    a workshop a site's name stays bound to its key (kept in $NBFL_KEYS, as a participant's):
    the site comes back with it, and someone else's key cannot take the name meanwhile."""
    ip.run_line_magic("fl_controller", f"start {room} --checkpoint-dir {tmp_path}")
    ip.run_line_magic("fl_spawn", "2")
    ip.run_line_magic("fl_round", "1")
    assert sorted(ip.user_ns["nbfl_controller"].history[-1].clients) == ["site-1", "site-2"]
    for proc in magics(ip).spawned:  # the restart: the kernel's children die with it, no goodbye ...
        proc.kill()
    ip.run_line_magic("reload_ext", "nbfl")  # ... and the new kernel's magics know nothing of them
    assert magics(ip).spawned == [] and magics(ip).controller is None
    shown = shown_html(ip, "fl_controller", f"start {room} --resume {tmp_path}")
    assert "1 rounds done" in shown
    said = "The local sites site-1, site-2 ended with the previous controller: <code>%fl_spawn 2</code> starts them"
    assert said in shown, shown
    ctl = ip.user_ns["nbfl_controller"]
    if ctl.join_code is not None:  # another computer (its own keys) claims a site's name while the site is away
        with monkeypatch.context() as elsewhere, pytest.raises(UsageError, match="joined from another computer"):
            elsewhere.setenv("NBFL_KEYS", str(tmp_path / "other-keys"))
            ip.run_line_magic("fl_join", f"{ctl.join_code} --name site-1 --data none")
    ip.run_line_magic("fl_spawn", "2")
    assert sorted(c.name for c in ctl.clients) == ["site-1", "site-2"]
    ip.run_line_magic("fl_round", "1")
    assert [r.round for r in ctl.history] == [1, 2] and ctl.history[-1].ok
    assert sorted(ctl.history[-1].clients) == ["site-1", "site-2"]  # the same sites answered round 2 as round 1
    ip.run_line_magic("fl_spawn", "1")  # one more, in this kernel: a name of its own
    assert sorted(c.name for c in ctl.live_clients()) == ["site-1", "site-2", "site2-1"]
    ip.run_line_magic("fl_controller", "stop")


def test_a_checkpoint_written_before_spawned_sites_were_recorded_resumes_without_naming_any(ip, tmp_path):
    """A checkpoint.json without the ``spawned`` field (nbfl before it) still resumes; it names no sites."""
    import json

    from nbfl.controller import checkpoint
    from nbfl.participant.builtin import digits_model
    from nbfl.protocol.records import RoundRecord, RoundStatus

    weights, _ = digits_model(trainer="numpy")
    record = RoundRecord(1, "fedavg", RoundStatus.OK, clients={"site-1": {"seconds": 0.1}})
    manifest = checkpoint.save(tmp_path, weights, [record], spawned=["site-1"]) / checkpoint.MANIFEST
    old = json.loads(manifest.read_text())
    del old["spawned"]
    manifest.write_text(json.dumps(old))
    shown = shown_html(ip, "fl_controller", f"start --resume {tmp_path}")
    assert "1 rounds done" in shown and "%fl_spawn" not in shown and "local sites" not in shown
    ctl = ip.user_ns["nbfl_controller"]
    assert ctl.resumed.spawned == [] and [r.round for r in ctl.history] == [1]
    ip.run_line_magic("fl_controller", "stop")


def started_again(start):
    """``start()`` once the dead controller's port is free: ZeroMQ closes a socket's listener
    on its own thread, a moment after ``close`` returns."""
    from nbfl.transport.threads import BindError

    made = []

    def attempt() -> bool:
        try:
            made.append(start())
        except BindError:
            return False
        return True

    until(attempt)
    return made[0]


def test_a_participant_follows_a_controller_restart_and_leaves_after_it_stops(ip, tmp_path):
    """The controller's kernel dies and comes back with --resume on the same port: the
    participant rejoins by itself, and its status line, %fl_status and its panel entry
    show the new rounds and no stale "not joined"; once the controller stops, %fl_leave
    says so instead of failing."""
    import nbfl
    from nbfl.notebook.magics.participant import client_status as _client_status

    first = nbfl.Controller("tcp://127.0.0.1:0", {"w": np.zeros(3, np.float32)}, checkpoint_dir=tmp_path)
    ip.run_cell(
        "import nbfl\n@nbfl.task('train')\ndef train(weights, ctx):\n    return {k: v + 1 for k, v in weights.items()}\n"
    )
    with shown_as_in_a_notebook(ip):
        ip.run_line_magic("fl_join", f"{first.endpoint} --name laptop --data none")
    client = ip.user_ns["nbfl_client"]
    first.run(2, timeout=60)
    first.io.stop()  # the kernel died: no goodbye
    port = first.endpoint.rsplit(":", 1)[1]
    second = started_again(lambda: nbfl.Controller(f"tcp://127.0.0.1:{port}", resume=tmp_path))
    try:
        records = second.run(2, timeout=60, join_timeout=120)
        assert [r.round for r in records] == [3, 4] and all(r.ok for r in records)
        until(lambda: client.rounds_done == 4)
        line = _client_status(client)
        assert "4 rounds done" in line and "not joined" not in line and "has not answered" not in line, line
        panel = client.panel_status()
        assert panel["rounds_done"] == 4 and panel["last_error"] is None and panel["controller_lost"] is None
        assert panel["global_round"] == 3  # the global model's metrics came with round 4's task
        with shown_as_in_a_notebook(ip):
            ip.run_line_magic("fl_status", "")  # a new status line (the old one may be gone with a reloaded page)
        assert magics(ip).client_status.html == line
    finally:
        second.close()
        first.close()
    until(lambda: client.state == "stopped")
    with shown_as_in_a_notebook(ip) as shown:
        ip.run_line_magic("fl_leave", "")
    said = shown.outputs[-1].data["text/html"]
    assert said == "laptop had already stopped (the controller stopped); %fl_join LINE joins again", said


def test_the_dashboard_status_and_panel_number_rounds_alike_during_and_after_a_run(ip, client_factory):
    """Two numberings, each labelled: the run's (round 2 of 3) and the controller's (round 4
    overall, as the history, the chart and the client table count). The dashboard's headline,
    %fl_status and the panel say the same while a second run goes and after it ends."""
    import threading

    gate = threading.Semaphore(0)
    gated = {"on": False}

    def train(weights, ctx):
        if gated["on"]:
            assert gate.acquire(timeout=120)
        return {k: v + 1 for k, v in weights.items()}

    ip.user_ns["w"] = {"w": np.zeros(3, np.float32)}
    with shown_as_in_a_notebook(ip):
        ip.run_line_magic("fl_controller", "start --model w")
        ctl = ip.user_ns["nbfl_controller"]
        client_factory(ctl.endpoint, "site", tasks={"train": train})
        ip.run_line_magic("fl_round", "2")  # an earlier run: rounds 1 and 2 overall
        gated["on"] = True
        ip.run_line_magic("fl_round", "3 --background")
    run, board = ip.user_ns["nbfl_run"], magics(ip).board

    def status_line() -> str:
        with shown_as_in_a_notebook(ip) as shown:
            ip.run_line_magic("fl_status", "")
        return "".join(html_shown(o.data) for o in shown.outputs)

    gate.release()  # round 1 of the run (3 overall) ends; round 2 (4 overall) begins
    until(lambda: run.round == 2 and run.progress[1] == 1)
    until(lambda: "round 2 of 3" in board.headline)
    panel = ctl.panel_status()["run"]
    assert (panel["round"], panel["overall"], panel["rounds"], panel["state"]) == (2, 4, 3, "running")
    for shown in (board.headline, status_line(), panel["summary"]):
        assert "running: round 2 of 3 (round 4 overall)" in shown, shown
    assert [c.last_round for c in ctl.clients] == [3]  # the table's column says "round (overall)"
    assert "round (overall)" in status_line()

    gate.release()
    gate.release()
    until(run.done)
    until(lambda: "finished" in board.headline)
    panel = ctl.panel_status()["run"]
    assert (panel["round"], panel["overall"], panel["state"]) == (3, 5, "finished")
    for shown in (board.headline, status_line(), panel["summary"]):
        assert "finished 3 of 3 rounds (to round 5 overall)" in shown, shown
    assert [r.round for r in ctl.history] == [1, 2, 3, 4, 5]
    ip.run_line_magic("fl_controller", "stop")


def test_waiting_for_the_room_names_who_has_joined_and_says_when_shares_stay_empty(ip, client_factory):
    import threading

    with shown_as_in_a_notebook(ip):
        ip.run_line_magic("fl_controller", "start --workshop --host 127.0.0.1 --capacity 4")
    code = str(ip.user_ns["nbfl_controller"].join_code)

    def arrive():  # two participants while the cell waits; the second once the line has named the first
        client_factory(code, "ada", tasks={"train": lambda weights, ctx: weights})
        until(lambda: magics(ip).room_line is not None and magics(ip).room_line.html.startswith("1 of 2 joined: ada"))
        client_factory(code, "grace", tasks={"train": lambda weights, ctx: weights})

    room = threading.Thread(target=arrive)
    room.start()
    with shown_as_in_a_notebook(ip) as shown:
        ip.run_line_magic("fl_controller", "wait 2")
    room.join()
    said = [out.data.get("text/html", "") for out in shown.outputs]
    assert said[0].startswith("0 of 2 joined (waiting") or said[0].startswith("1 of 2 joined: ada (waiting"), said
    assert any(s.startswith("1 of 2 joined: ada (waiting") for s in said), said
    assert "2 of 2 joined: ada, grace" in said
    assert "2 of 4 shares are taken: the model trains on about 50% of the digits" in said[-1]
    assert "--capacity 2" in said[-1]
    ip.run_line_magic("fl_controller", "stop")


def test_fl_export_writes_the_history_one_row_per_round_or_per_client(ip, tmp_path, client_factory):
    ip.user_ns["w"] = small_model()
    ip.run_line_magic("fl_controller", "start --model w")
    ctl = ip.user_ns["nbfl_controller"]
    try:
        for name in ("a", "b"):
            client_factory(ctl.endpoint, name, tasks=adder(1.0))
        ip.run_line_magic("fl_round", "2")
        ip.run_line_magic("fl_export", f"{tmp_path / 'rounds.csv'}")
        ip.run_line_magic("fl_export", f"{tmp_path / 'clients.json'} --clients")
        with pytest.raises(UsageError, match="writes .csv or .json"):
            ip.run_line_magic("fl_export", f"{tmp_path / 'run.xlsx'}")
    finally:
        ip.run_line_magic("fl_controller", "stop")
    with open(tmp_path / "rounds.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["round"], r["status"], r["clients"]) for r in rows] == [("1", "ok", "2"), ("2", "ok", "2")]
    per_client = json.loads((tmp_path / "clients.json").read_text())
    assert sorted((r["round"], r["client"], r["status"]) for r in per_client) == [
        (1, "a", "ok"),
        (1, "b", "ok"),
        (2, "a", "ok"),
        (2, "b", "ok"),
    ]


def test_fl_compare_overlays_every_run_labelled_by_its_algorithm_and_settings(ip, client_factory):
    ip.user_ns["w"] = small_model()
    ip.user_ns["score"] = lambda weights: {"accuracy": float(weights["b"].mean())}  # moves with each round
    ip.run_line_magic("fl_controller", "start --model w --evaluate score")
    ctl = ip.user_ns["nbfl_controller"]
    try:
        with pytest.raises(UsageError, match="no run of this notebook"):
            ip.run_line_magic("fl_compare", "")
        for name in ("a", "b", "c"):
            client_factory(ctl.endpoint, name, tasks=adder(0.1))
        ip.run_line_magic("fl_round", "2")
        ip.run_line_magic("fl_round", "3 --algorithm fedprox --sample 2 --sample-seed 5")
        with capture_output() as shown:
            ip.run_line_magic("fl_compare", "")
    finally:
        ip.run_line_magic("fl_controller", "stop")
    found = ip.user_ns["nbfl_compare"]
    assert list(found) == ["fedavg", "fedprox, sample=2.0, sample_seed=5"]  # the settings beside each history
    assert [r for r, _ in found["fedavg"]] == [1, 2] and [
        r for r, _ in found["fedprox, sample=2.0, sample_seed=5"]
    ] == [
        1,
        2,
        3,
    ]
    assert found["fedavg"][-1][1] == pytest.approx(float(small_model()["b"].mean()) + 0.2, rel=1e-5)
    assert any("image/png" in output.data for output in shown.outputs)


def test_a_simulation_of_hundreds_from_magics_with_a_searchable_table(ip):
    """%fl_spawn 300 --per-process 150: two processes of simulated clients on generated
    data; %fl_round samples them; the table shows 100 rows and finds a name."""
    ip.run_line_magic("fl_controller", "start --data synthetic")
    ctl = ip.user_ns["nbfl_controller"]
    with shown_as_in_a_notebook(ip) as shown:
        ip.run_line_magic("fl_spawn", "300 --per-process 150 --data synthetic --partition iid --epochs 1")
    assert len(ctl.live_clients()) == 300 and len(magics(ip).spawned) == 2  # two processes
    assert "300 clients: 300 idle" in shown.stdout + "".join(o.data.get("text/html", "") for o in shown.outputs)
    ip.run_line_magic("fl_round", "2 --sample 10")
    assert all(r.ok and len(r.clients) == 10 for r in ctl.history)
    with shown_as_in_a_notebook(ip) as shown:
        ip.run_line_magic("fl_clients", "")
    table = "".join(o.data["text/html"] for o in shown.outputs)
    assert table.count("<tr>") == 1 + 100 and "the table shows 100 (the latest to train first)" in table
    trained = ctl.history[-1].sampled
    assert all(f">{name}<" in table for name in trained)  # the round's clients come first
    with shown_as_in_a_notebook(ip) as shown:
        ip.run_line_magic("fl_clients", "site-29")
    found = "".join(o.data["text/html"] for o in shown.outputs)
    assert found.count("<tr>") == 1 + 11 and "11 named *site-29*" in found  # site-29, site-290 .. site-299
    for labels in ("", "--partition dirichlet:0.5 --clients 1000 --data synthetic"):  # theirs; a preview
        with capture_output() as shown:
            ip.run_line_magic("fl_labels", labels)
        [png] = [out.data["image/png"] for out in shown.outputs if "image/png" in out.data]
        raw = base64.b64decode(png) if isinstance(png, str) else png
        assert int.from_bytes(raw[16:20], "big") == 900  # the heatmap's 10 inches, not 300 or 1000 bars
    ip.run_line_magic("fl_controller", "stop")
