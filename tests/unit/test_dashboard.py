"""The dashboard's parts as a projected room reads them: the client table's order and
failures, compact numbers, the plot's axis, and the text a terminal gets instead.

The whole dashboard at 1280x720 in a real browser is tests/e2e/test_browser.py's
projector test; these pin down the pieces it is built from.
"""

import re

import pytest

from nbfl.notebook.dashboard import clients_html, compact
from nbfl.notebook.plots import MARKED, history_figure
from nbfl.notebook.text import text_of
from nbfl.protocol.records import ClientInfo, RoundRecord


def client(name: str, state: str = "idle", **fields) -> ClientInfo:
    return ClientInfo(name=name, host="10.0.0.9", device="cpu", samples=100, peer=name.encode(), state=state, **fields)


def test_active_clients_come_first_and_removed_or_left_ones_are_one_line():
    shown = clients_html(
        [
            client("ann", "removed"),
            client("bob"),
            client("cy", "left"),
            client("dee", "lost"),
            client("eve", "training"),
            client("fay", "joining"),
        ]
    )
    rows = re.findall(r"<tr><td>(\w+)</td>", shown)
    assert rows == ["bob", "eve", "fay", "dee"]  # idle and training, then joining, then lost
    assert re.search(r"gone: ann \(removed\), cy \(left\)</div>", shown)
    assert "6 clients: 1 idle, 1 joining, 1 left, 1 lost, 1 removed, 1 training" in shown


def test_a_failing_client_is_red_in_its_row_with_the_reason_in_its_tooltip():
    reason = "the task's code imports 'tenseal', which is not installed on this machine: install it here to take part"
    shown = clients_html([client("ok"), client("bad", last_error=reason)])
    row = next(r for r in re.findall(r"<tr>.*?</tr>", shown) if "<td>bad</td>" in r)
    cell = re.search(r"<td class='nbfl-failing' title='([^']*)'>([^<]*)</td>", row)
    assert cell is not None, row
    assert cell.group(2).startswith("last task failed (idle): the task&#x27;s code imports")
    assert "not installed on this machine" in cell.group(1)
    assert "nbfl-failing" not in next(r for r in re.findall(r"<tr>.*?</tr>", shown) if "<td>ok</td>" in r)


def test_numbers_are_short_enough_for_narrow_columns():
    assert [compact(n) for n in (0, 980, 5_660, 31_234, 999_499, 1_250_000, 3.4e9)] == [
        "0",
        "980",
        "5.7k",
        "31k",
        "999k",
        "1.2M",
        "3.4G",
    ]
    shown = clients_html([client("a", traffic=(5_660, 120_400), last_seconds=0.0123456, last_round=7)])
    assert "<td>5.7k/120k</td>" in shown and "<td>0.01</td>" in shown


@pytest.mark.parametrize("rounds", [4, 7, 480])
def test_the_plot_numbers_rounds_in_whole_numbers_and_draws_long_runs_as_lines(rounds):
    history = [
        RoundRecord(r, "fedavg", metrics={"accuracy": r / (rounds + 1), "loss": 1 / r}) for r in range(1, rounds + 1)
    ]
    fig = history_figure(history)
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert len(ticks) <= 6  # readable, not a row of digits run together
        (line,) = ax.get_lines()
        assert (line.get_marker() == "o") == (rounds <= MARKED)


def test_a_terminal_gets_the_table_as_text_without_the_style_sheet():
    text = text_of(clients_html([client("ann"), client("bob", "removed")], "CurveZMQ: encrypted"))
    assert "{" not in text and "nbfl-dash" not in text and "<" not in text
    lines = text.splitlines()
    assert lines[0] == "CurveZMQ: encrypted"
    assert re.match(r"client\s+share\s+code\s+device\s+host", lines[2])
    assert re.match(r"ann\s+own\s+cpu\s+10\.0\.0\.9\s+100\s+idle", lines[3])
    assert lines[-1] == "gone: bob (removed)"
