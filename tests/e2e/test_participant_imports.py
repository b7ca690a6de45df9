"""A participant's notebook imports what it uses and nothing more: ``%load_ext nbfl``
and ``%fl_join`` in a plain IPython shell (a separate process, as a participant's kernel
is), joined to a real controller over 127.0.0.1, two rounds trained. ipywidgets is
blocked there, as the participant install has none (where it is installed, the status
line is a widget); the status line then is a display handle."""

import os
import subprocess
import sys

import nbfl
from nbfl.participant.builtin import digits_model

HEAVY = ("torch", "sklearn", "matplotlib", "jupyterlab", "scipy", "pandas")
PARTICIPANT = """
import sys
from IPython.core.interactiveshell import InteractiveShell

heavy = {heavy!r}
sys.modules["ipywidgets"] = None  # not installed, as in the participant install
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "nbfl")
print("after load_ext:", sorted(m for m in heavy if m in sys.modules), flush=True)
ip.run_line_magic("fl_join", "{endpoint} --name laptop --num-clients 2 --index 0")
client = ip.user_ns["nbfl_client"]
print("joined", flush=True)
sys.stdin.readline()  # the test says when its rounds are done
print("rounds done:", client.rounds_done, flush=True)
print("after training:", sorted(m for m in heavy if m in sys.modules), flush=True)
client.stop()
"""


def test_a_participant_notebook_imports_no_widgets_plots_torch_or_scikit_learn():
    weights, evaluate = digits_model(trainer="numpy")
    with nbfl.Controller("tcp://127.0.0.1:0", weights, evaluate=evaluate) as ctl:
        code = PARTICIPANT.format(heavy=HEAVY, endpoint=ctl.endpoint)
        env = {**os.environ, "NBFL_TRAINER": "numpy"}  # a participant without torch; with it, auto would train on torch
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            first = proc.stdout.readline()
            assert first == "after load_ext: []\n", first + proc.stderr.read()
            while (line := proc.stdout.readline()) not in ("joined\n", ""):  # the join's status line, shown as text
                pass
            assert line == "joined\n", proc.stderr.read()
            history = ctl.run(2, timeout=120)
            out, err = proc.communicate("go\n", timeout=120)
        finally:
            proc.kill()
    assert [r.status for r in history] == ["ok", "ok"]
    assert "rounds done: 2" in out and "after training: []" in out, out + err
