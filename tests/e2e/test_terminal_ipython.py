"""The magics in terminal IPython (a process of its own, a real controller and client
over 127.0.0.1): text, not ``<IPython.core.display.HTML object>``; a line per round
instead of widgets; a plot says where it shows."""

import os
import subprocess
import sys

SESSION = """
from IPython.terminal.interactiveshell import TerminalInteractiveShell

ip = TerminalInteractiveShell.instance()
for line in ["%load_ext nbfl", "%fl_controller start", "ep = nbfl_controller.endpoint",
             "%fl_join $ep --name laptop --index 0 --num-clients 2", "%fl_round 2", "%fl_status", "%fl_clients",
             "%fl_history", "%fl_labels --partition dirichlet:0.5", "%fl_leave", "%fl_controller stop"]:
    print(">>>", line, flush=True)
    ip.run_cell(line, store_history=False)
"""


def test_magics_in_terminal_ipython_print_text(tmp_path):
    env = {**os.environ, "NBFL_TRAINER": "numpy", "NBFL_KEYS": str(tmp_path / "keys")}
    done = subprocess.run([sys.executable, "-c", SESSION], capture_output=True, text=True, env=env, timeout=240)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "<IPython.core.display" not in out and "object at 0x" not in out, out
    assert "<div" not in out and "<td>" not in out, out  # no markup either
    by_magic = dict(part.split("\n", 1) for part in out.split(">>> ")[1:])
    rounds = by_magic["%fl_round 2"].splitlines()  # a line per round, then how the run ended and the table
    assert rounds[0].startswith("round 1 of 2: ok accuracy") and rounds[1].startswith("round 2 of 2: ok accuracy"), (
        rounds
    )
    assert rounds[2].startswith("finished 2 of 2 rounds; accuracy"), rounds
    table = by_magic["%fl_clients"].splitlines()
    header = next(line for line in table if line.startswith("client "))
    row = next(line for line in table if line.startswith("laptop "))
    assert row.index("1/2") == header.index("share") and row.index("idle") == header.index("state")  # aligned columns
    assert "run: finished 2 of 2 rounds" in by_magic["%fl_status"]
    assert by_magic["%fl_labels --partition dirichlet:0.5"].strip() == "(a plot: it shows in a notebook)"
    assert "laptop left" in by_magic["%fl_leave"]
    assert (
        by_magic["%fl_join $ep --name laptop --index 0 --num-clients 2"].count("\n") <= 3
    )  # no reprinted status lines
