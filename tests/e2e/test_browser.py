"""A person's view: JupyterLab in headless Chromium runs the quickstart end to end.

Needs Debian's chromium and Playwright's Python package (no browser download); CI
installs both (.ci/run). Elsewhere the test is skipped when chromium is missing.
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

import nbfl

from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out" / "test_browser"
CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

if not CHROMIUM and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it)", allow_module_level=True)

# every distinct PNG the page shows inside an output area, as it changes
WATCH_PLOTS = """() => {
  window.nbflPlots = new Set();
  const grab = () => document.querySelectorAll('.jp-OutputArea img').forEach(
      img => { if (img.src.startsWith('data:image/png')) window.nbflPlots.add(img.src); });
  new MutationObserver(grab).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def wait_for_one_kernel(base: str, token: str, timeout: float = 120) -> None:
    """Until the notebook's session has one connected, idle kernel, twice in a row.

    JupyterLab can start a kernel and replace it at once on a loaded machine; cells run
    on the first one would be lost.
    """
    deadline, seen = time.monotonic() + timeout, None
    kernels: list = []
    while time.monotonic() < deadline:
        sessions = json.load(urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5))
        kernels = [(s["kernel"]["id"], s["kernel"]["execution_state"], s["kernel"]["connections"]) for s in sessions]
        if len(kernels) == 1 and kernels[0][1] == "idle" and kernels[0][2] >= 1:
            if seen == kernels[0][0]:
                return
            seen = kernels[0][0]
        time.sleep(1)
    raise AssertionError(f"the notebook's kernel did not settle: {kernels}")


def run_all_cells(page) -> None:
    """Run > Run All Cells with the notebook focused, until the first code cell has run."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    first_prompt = page.locator(".jp-CodeCell .jp-InputArea-prompt").first
    for _ in range(3):
        page.locator(".jp-Notebook .jp-Cell").first.click()  # the menu acts on the focused notebook
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            first_prompt.filter(has_text="[1]").wait_for(state="attached", timeout=30_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError("Run All Cells never ran the first cell")


@dataclass
class Lab:
    base: str  # the server's address
    token: str
    folder: Path  # what it serves
    comms: str  # its commsOverSubshells setting


@contextmanager
def notebook_page(lab: Lab, name: str, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """Headless Chromium with ``name`` open in JupyterLab and its kernel settled; a
    screenshot of the page is saved if the test fails. The page may use the clipboard."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(
            viewport={"width": width, "height": height}, permissions=["clipboard-read", "clipboard-write"]
        )
        try:
            page.goto(f"{lab.base}/lab/tree/{name}?token={lab.token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            wait_for_one_kernel(lab.base, lab.token)
            yield page
        except Exception:
            page.screenshot(path=str(OUT / "failure.png"))  # what the page showed when it went wrong
            raise
        finally:
            browser.close()


@pytest.fixture
def lab(tmp_path, request):
    """JupyterLab serving a folder with the quickstart; ``request.param``, if any, is its
    "commsOverSubshells" setting (JupyterLab's default is perCommTarget)."""
    assert CHROMIUM, "CI must install Debian's chromium (apt-get install chromium)"
    (tmp_path / "lab").mkdir()
    shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", tmp_path / "lab")
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # render every cell (outputs below the fold are in the page); no kernel dialog
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none", "autoStartDefaultKernel": true}')
    kernels = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    kernels.mkdir(parents=True)
    comms = getattr(request, "param", "perCommTarget")
    (kernels / "kernels-settings.jupyterlab-settings").write_text(json.dumps({"commsOverSubshells": comms}))
    (kernels / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    port, token = free_port(), secrets.token_hex(16)
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT / "jupyterlab.log", "w")  # the server's side of a failure
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path / 'lab'}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.allow_root=True",  # CI runs as root
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
            f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},  # its kernels' controllers register here
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert server.poll() is None, "jupyter lab exited at start"
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield Lab(base, token, tmp_path / "lab", comms)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def test_quickstart_in_jupyterlab(lab):
    with notebook_page(lab, "01_quickstart.ipynb") as page:
        page.evaluate(WATCH_PLOTS)
        run_all_cells(page)
        output = page.locator(".jp-OutputArea-output")
        output.filter(has_text="global model test accuracy:").wait_for(state="attached", timeout=240_000)
        output.filter(has_text="controller stopped").wait_for(state="attached", timeout=60_000)
        round_cell = page.locator(".jp-CodeCell", has_text="%fl_round").first
        rows = round_cell.locator("table.nbfl-clients").last.locator("tbody tr")
        assert rows.count() == 4
        assert sorted(rows.nth(i).locator("td").first.inner_text() for i in range(4)) == [
            "site-1",
            "site-2",
            "site-3",
            "site-4",
        ]
        plots = page.evaluate("() => window.nbflPlots.size")
        assert plots >= 2, "the plot did not change between rounds"
        round_cell.scroll_into_view_if_needed()
        round_cell.evaluate("cell => cell.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(OUT / "quickstart.png"))


STOP_NOTEBOOK = [
    "%load_ext nbfl\n%fl_controller start\n%fl_spawn 2 --partition iid",
    "%%fl_task train\nimport time, nbfl\n\ndef train(weights, ctx):\n    ctx.abort.wait(0.25)  # a slow site\n"
    "    return nbfl.Update({k: v * 0.99 for k, v in weights.items()}, num_samples=len(ctx.data[1]))",
    "%fl_round 200",
    "%fl_round 2",
    "print('after the stop:', [str(r.status) for r in nbfl_controller.history][-2:], nbfl_controller.active_run)",
]


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.parametrize("lab", ["perCommTarget", "disabled"], indirect=True)
def test_stop_button_ends_a_blocking_fl_round(lab):
    """While %fl_round 200 blocks its cell, a click on the dashboard's Stop button ends the run;
    the cell ends with fewer than 200 rounds, the kernel goes idle and the next %fl_round runs."""
    write_notebook(lab.folder / "stop.ipynb", STOP_NOTEBOOK)
    with notebook_page(lab, "stop.ipynb") as page:
        run_all_cells(page)
        cell = page.locator(".jp-CodeCell").filter(has_text="%fl_round 200")
        # a round takes a fraction of a second: wait until two have ended (the headline names the round going on)
        cell.locator(".nbfl-status", has_text=re.compile(r"round ([3-9]|\d\d+) of 200")).wait_for(timeout=240_000)
        assert cell.locator(".jp-InputArea-prompt").inner_text().strip() == "[*]:"  # still running
        cell.scroll_into_view_if_needed()
        clicked = time.monotonic()
        cell.locator("button", has_text="Stop").click()
        stopped = cell.locator(".nbfl-status", has_text="stopped after")
        stopped.wait_for(state="attached", timeout=60_000)
        seconds = time.monotonic() - clicked
        done = int(re.search(r"stopped after (\d+) of 200 rounds", stopped.inner_text()).group(1))
        assert 2 <= done < 200
        after = page.locator(".jp-OutputArea-output", has_text="after the stop:")
        after.wait_for(state="attached", timeout=120_000)
        assert "['ok', 'ok'] None" in after.inner_text()  # the next %fl_round completed its 2 rounds
        wait_for_one_kernel(lab.base, lab.token)  # idle
        cell.evaluate("cell => cell.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(OUT / f"stop-{lab.comms}.png"))
        (OUT / f"stop-{lab.comms}.txt").write_text(
            f"the run ended after {done} of 200 rounds; the cell said so {seconds:.2f} s after the click\n"
        )


WORKSHOP = [
    "%load_ext nbfl",
    "%fl_controller start --workshop --host 127.0.0.1 --capacity 30",
    "nbfl_controller.wait_for_clients(30, timeout=600)",
    "%fl_round 3",
]


def test_instructor_dashboard_with_thirty_participants(lab):
    """The room's view: 30 participants join with the line read off the instructor's page;
    the dashboard's table scrolls inside its box and the plot stays in view."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in WORKSHOP])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab.folder / "workshop.ipynb")
    names = [f"participant-{i:02d}" for i in range(1, 31)]
    with notebook_page(lab, "workshop.ipynb") as page:
        run_all_cells(page)
        field = page.locator(".nbfl-join-line").first
        field.wait_for(state="attached", timeout=120_000)
        line = field.inner_text().strip()  # what a person copies with the button
        assert line.startswith("%fl_join nbfl://127.0.0.1:") and line.endswith("--name YOUR_NAME --accept-code")
        people = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "participants.py"), line, *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        try:
            output = page.locator(".jp-OutputArea-output")
            output.filter(has_text="final accuracy").wait_for(state="attached", timeout=300_000)
            round_cell = page.locator(".jp-CodeCell", has_text="%fl_round").first
            table = round_cell.locator("table.nbfl-clients").last
            rows = table.locator("tbody tr")
            assert rows.count() == 30
            shares = {rows.nth(i).locator("td").nth(1).inner_text() for i in range(30)}
            assert len(shares) == 30  # thirty different shares of the digits
            round_cell.evaluate("cell => cell.scrollIntoView({block: 'start'})")
            plot = round_cell.locator(".jp-OutputArea-output img").last
            box, viewport = plot.bounding_box(), page.viewport_size
            assert box is not None and box["y"] + box["height"] <= viewport["height"], (box, viewport)
            assert table.bounding_box()["height"] > table.locator("xpath=..").bounding_box()["height"]  # it scrolls
            page.screenshot(path=str(OUT / "workshop_dashboard.png"))
        finally:
            people.stdin.close()
            people.wait(60)


PANEL_NOTEBOOK = [
    "%load_ext nbfl\n%fl_controller start\n%fl_spawn 3",
    "%fl_round 500",
    "print('after the stop:', nbfl_controller.last_run.summary())",
]


def test_federation_panel_follows_and_stops_a_running_fl_round(lab):
    """The Federation side panel, while the cell with %fl_round 500 is still running (the
    kernel busy): three clients and a round number that advances, in the light and the dark
    theme; its Stop button ends the run and the cell."""
    write_notebook(lab.folder / "panel.ipynb", PANEL_NOTEBOOK)
    with notebook_page(lab, "panel.ipynb") as page:
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="nbfl-federation"]').click()
        panel = page.locator("#nbfl-federation")
        panel.locator(".nbfl-fed-empty").wait_for(timeout=60_000)  # nothing started yet
        run_all_cells(page)
        cell = page.locator(".jp-CodeCell").filter(has_text="%fl_round 500")
        rows = panel.locator(".nbfl-fed-clients tbody tr")
        number = panel.locator(".nbfl-fed-round")

        def round_shown() -> int:
            number.wait_for(timeout=240_000)
            return int(number.get_attribute("data-round") or 0)

        first = round_shown()
        deadline = time.monotonic() + 240
        while round_shown() <= first:  # the panel's own polling, not a reload
            assert time.monotonic() < deadline, f"the panel stayed at round {first}"
            time.sleep(0.2)
        assert rows.count() == 3
        assert sorted(rows.nth(i).get_attribute("data-name") for i in range(3)) == ["site-1", "site-2", "site-3"]
        assert panel.locator(".nbfl-fed-runstate").inner_text().strip() == "running"
        assert cell.locator(".jp-InputArea-prompt").inner_text().strip() == "[*]:"  # the kernel is busy all along
        page.screenshot(path=str(OUT / "federation_panel_light.png"))

        page.get_by_role("menuitem", name="Settings", exact=True).click()  # Settings > Theme > JupyterLab Dark
        page.locator(".lm-Menu-item[data-type='submenu']", has_text="Theme").first.click()
        page.locator(".lm-Menu-item", has_text="JupyterLab Dark").first.click()
        page.wait_for_selector('body[data-jp-theme-light="false"]', state="attached", timeout=60_000)
        shown = round_shown()
        while round_shown() <= shown:
            assert time.monotonic() < deadline + 120, "the panel stopped following after the theme changed"
            time.sleep(0.2)
        page.screenshot(path=str(OUT / "federation_panel_dark.png"))
        assert cell.locator(".jp-InputArea-prompt").inner_text().strip() == "[*]:"

        panel.locator(".nbfl-fed-stop").click()
        panel.locator(".nbfl-fed-runstate", has_text="stopped").wait_for(timeout=60_000)
        after = page.locator(".jp-OutputArea-output", has_text="after the stop:")
        after.wait_for(state="attached", timeout=120_000)
        done = int(re.search(r"after the stop: stopped after (\d+) of 500 rounds", after.inner_text()).group(1))
        assert 2 <= done < 500
        assert panel.locator(".nbfl-fed-stop").is_disabled()


def test_federation_panel_backs_off_while_the_server_does_not_answer_and_recovers(lab):
    """The panel polls with @lumino/polling: while its requests fail it says so, keeps the
    last view and asks again less and less often; once the server answers it shows the
    federation again by itself. (The intervals are lumino's, randomized between one second
    and three times the last, at most 30 s: printed, not asserted.)"""
    write_notebook(lab.folder / "quiet.ipynb", ["1"])
    with notebook_page(lab, "quiet.ipynb") as page:
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="nbfl-federation"]').click()
        panel = page.locator("#nbfl-federation")
        panel.locator(".nbfl-fed-empty").wait_for(timeout=60_000)
        failed: list[float] = []

        def refuse(route) -> None:
            failed.append(time.monotonic())
            route.abort()

        page.route("**/nbfl/federation*", refuse)
        panel.locator(".nbfl-fed-error", has_text="Cannot read the federation").wait_for(timeout=60_000)
        for _ in range(240):  # each one asked later than the last; about 40 s for four
            if len(failed) >= 4:
                break
            page.wait_for_timeout(500)
        assert len(failed) >= 4, failed  # it kept asking
        page.unroute("**/nbfl/federation*")
        panel.locator(".nbfl-fed-error").wait_for(state="hidden", timeout=90_000)
        assert panel.locator(".nbfl-fed-empty").is_visible()
        gaps = [round(b - a, 1) for a, b in zip(failed, failed[1:])]
        print(f"seconds between the failed requests: {gaps}")


def test_federation_panel_in_participant_mode(lab, monkeypatch):
    """A participant's JupyterLab: the notebook joins a workshop with its line; the panel shows
    the participant with its accuracy beside the global one and Leave ends its part. The
    instructor's controller (this test's process, registered where this server looks) lists
    the join line, and its Remove button takes another participant out."""
    import torch

    from nbfl.controller.workshop import Workshop
    from nbfl.data import load_digits_split
    from nbfl.participant.builtin import digits_setup
    from nbfl.participant.models import DigitsMLP
    from nbfl.participant.trainers import evaluator

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(lab.folder.parent / "runtime"))  # the server's registry
    torch.manual_seed(0)
    _, _, x_test, y_test = load_digits_split()
    model = DigitsMLP()
    ctl = nbfl.Controller(
        "tcp://127.0.0.1:0",
        model,
        workshop=Workshop(capacity=4, host="127.0.0.1"),
        evaluate=evaluator(model, x_test, y_test),
    )
    bob = nbfl.Client(str(ctl.join_code), "bob", from_share=digits_setup).start()
    line = f"%fl_join {ctl.join_code} --name alice"
    write_notebook(lab.folder / "participant.ipynb", ["%load_ext nbfl", line])
    try:
        with notebook_page(lab, "participant.ipynb") as page:
            run_all_cells(page)
            ctl.wait_for_clients(2, timeout=120)
            assert ctl.run(rounds=3)[-1].ok
            page.locator('.jp-SideBar .lm-TabBar-tab[data-id="nbfl-federation"]').click()
            panel = page.locator("#nbfl-federation")
            entries = panel.locator(".nbfl-fed-entry")
            entries.filter(has_text="participant.ipynb").click()
            facts = panel.locator(".nbfl-fed-participant")
            facts.filter(has_text=re.compile(r"Rounds done\s*3")).wait_for(timeout=60_000)
            global_accuracy = ctl.history[-2].metrics["accuracy"]  # sent with round 3's task
            assert re.search(rf"your model 0\.\d+ · global {global_accuracy:.4f} \(round 2\)", facts.inner_text()), (
                facts.inner_text()
            )
            assert re.search(r"Name\s*alice\s*Share\s*[12]/4", facts.inner_text()), facts.inner_text()
            page.screenshot(path=str(OUT / "federation_panel_participant.png"))

            entries.filter(has_text=f"pid {os.getpid()}").click()  # the instructor's controller
            panel.locator(".nbfl-fed-show-join").click()
            assert (
                panel.locator("input.nbfl-fed-joinline").input_value()
                == f"%fl_join {ctl.join_code} --name YOUR_NAME --accept-code"
            )
            panel.locator('.nbfl-fed-clients tr[data-name="bob"] .nbfl-fed-remove').click()
            page.locator(".jp-Dialog .jp-mod-warn", has_text="Remove").click()
            assert bob.wait(timeout=60)  # the controller said goodbye
            panel.locator('.nbfl-fed-clients tr[data-name="bob"] .nbfl-fed-state', has_text="removed").wait_for(
                timeout=60_000
            )

            entries.filter(has_text="participant.ipynb").click()
            panel.locator(".nbfl-fed-leave").click()
            page.locator(".jp-Dialog .jp-mod-warn", has_text="Leave").click()
            panel.locator(".nbfl-fed-message", has_text="alice is leaving").wait_for(timeout=60_000)
            entries.filter(has_text="participant.ipynb").wait_for(state="detached", timeout=60_000)  # it unregistered
            wait_until = time.monotonic() + 60
            while [c.state for c in ctl.clients if c.name == "alice"] != ["left"]:
                assert time.monotonic() < wait_until, ctl.clients
                time.sleep(0.1)
    finally:
        bob.stop()
        ctl.close()


PROJECTOR = [
    "%load_ext nbfl\n%fl_controller start --workshop --host 127.0.0.1 --capacity 12",
    "%fl_controller wait 12",
    "%fl_controller remove participant-11\n%fl_controller remove participant-12",
    "%fl_round 5",
]

# every element of a cell's outputs wider than its box: what would put a horizontal scrollbar on the page
OVERFLOWING = """cell => [...cell.querySelectorAll('.jp-OutputArea-output, .jp-OutputArea-output *')]
  .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'hidden'
               && e.clientWidth > 0)
  .map(e => e.className || e.tagName)"""


def test_the_dashboard_fits_a_projector_in_the_light_and_the_dark_theme(lab):
    """At 1280x720, with 12 participants (two removed, one failing every task): Stop, the
    headline naming the failure, the wrapped join line, 8 or more client rows and the
    whole plot in view at once, nothing scrolling sideways; the same in the dark theme,
    with a dark plot. The copy button puts the line on the clipboard and says so."""
    write_notebook(lab.folder / "projector.ipynb", PROJECTOR)
    names = [f"participant-{i:02d}" for i in range(1, 13)]
    names[6] += "!"  # participant-07's every task fails (tests/participants.py)
    with notebook_page(lab, "projector.ipynb", 1280, 720) as page:
        run_all_cells(page)
        field = page.locator(".nbfl-join-line").first
        field.wait_for(state="attached", timeout=120_000)
        line = field.inner_text().strip()
        assert line.startswith("%fl_join nbfl://127.0.0.1:") and line.endswith("--name YOUR_NAME --accept-code")
        people = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "participants.py"), line, *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        try:
            page.locator(".jp-OutputArea-output", has_text="final accuracy").wait_for(state="attached", timeout=300_000)
            cell = page.locator(".jp-CodeCell").filter(has_text="%fl_round 5").first
            cell.evaluate("cell => cell.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)  # let the scroll settle before measuring
            assert_fits_the_screen(page, cell, line)
            join_line_now = cell.locator(".nbfl-join-line").last.inner_text().strip()
            page.screenshot(path=str(OUT / "projector_light.png"))

            page.get_by_role("menuitem", name="Settings", exact=True).click()  # Settings > Theme > JupyterLab Dark
            page.locator(".lm-Menu-item[data-type='submenu']", has_text="Theme").first.click()
            page.locator(".lm-Menu-item", has_text="JupyterLab Dark").first.click()
            page.wait_for_selector('body[data-jp-theme-light="false"]', state="attached", timeout=60_000)
            page.wait_for_timeout(1000)  # the theme's stylesheet applies
            cell.evaluate("cell => cell.scrollIntoView({block: 'start'})")
            assert_fits_the_screen(page, cell, line)
            plot = cell.locator(".nbfl-plot img").last
            assert "invert" in plot.evaluate("img => getComputedStyle(img).filter")  # drawn dark
            text = cell.locator(".nbfl-dash").last.evaluate("e => getComputedStyle(e).color")
            assert text.startswith("rgba(255, 255, 255"), text  # the dark theme's light text
            page.screenshot(path=str(OUT / "projector_dark.png"))

            button = cell.locator("button.nbfl-copy").last
            button.click()
            cell.locator("button.nbfl-copy", has_text="copied").wait_for(timeout=10_000)
            assert page.evaluate("navigator.clipboard.readText()").strip() == join_line_now
        finally:
            people.stdin.close()
            people.wait(60)


def assert_fits_the_screen(page, cell, line: str) -> None:
    """What the room must see of the dashboard in ``cell``, all inside the viewport at once."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]

    def in_view(locator, what: str) -> dict:
        box = locator.bounding_box()
        assert box is not None, f"no {what}"
        assert box["y"] >= 0 and box["y"] + box["height"] <= height and box["x"] + box["width"] <= width, (what, box)
        return box

    stop = cell.locator("button", has_text="Stop").first
    in_view(stop, "Stop button")
    headline = cell.locator(".nbfl-status").last
    in_view(headline, "headline")
    assert "1 client failed in every round (participant-07)" in headline.inner_text()
    join = cell.locator(".nbfl-join-line").last
    box = in_view(join, "join line")
    shown = join.inner_text().strip()  # the line of now: removing someone gave the room a new one
    assert shown.startswith(line.split("/")[0]) and shown.endswith("--name YOUR_NAME --accept-code") and shown != line
    size = float(join.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))
    assert size >= 18 and box["height"] > 1.5 * size  # large, and wrapped rather than cut
    table = cell.locator("table.nbfl-clients").last
    rows = table.locator("tbody tr")
    assert rows.count() == 10  # the removed two are one line under the table
    frame = table.locator("xpath=..").bounding_box()
    visible = [rows.nth(i).bounding_box() for i in range(rows.count())]
    bottom = min(height, frame["y"] + frame["height"])
    shown = [b for b in visible if b["y"] >= 0 and b["y"] + b["height"] <= bottom + 1]
    assert len(shown) >= 8, (len(shown), visible, frame)
    gone = cell.locator(".nbfl-gone").last.inner_text()
    assert "participant-11 (removed)" in gone and "participant-12 (removed)" in gone
    failing = table.locator("tr", has_text="participant-07").locator("td.nbfl-failing")
    assert "last task failed" in failing.inner_text()
    in_view(cell.locator(".nbfl-plot img").last, "plot")
    assert cell.evaluate(OVERFLOWING) == []
    scroller = page.locator(".jp-NotebookPanel-notebook").first
    assert scroller.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the notebook scrolls sideways"


RELOAD = [
    "%load_ext nbfl\n%fl_controller start\n%fl_spawn 2",
    "%fl_round 10000",
]


def test_after_a_page_reload_fl_status_shows_the_running_dashboard_and_its_stop_ends_the_run(lab):
    """Reload the page while %fl_round 10000 holds the kernel: the Federation panel says how to
    get the dashboard back; its Detach lets the cell end (the run goes on), %fl_status in a
    new cell shows the live dashboard, and that dashboard's Stop ends the run."""
    write_notebook(lab.folder / "reload.ipynb", RELOAD)
    with notebook_page(lab, "reload.ipynb", 1280, 720) as page:
        run_all_cells(page)
        cell = page.locator(".jp-CodeCell").filter(has_text="%fl_round 10000").first
        cell.locator(".nbfl-status", has_text=re.compile(r"round \d+ of 10000")).wait_for(
            state="attached", timeout=240_000
        )

        page.reload()
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="nbfl-federation"]').click()
        panel = page.locator("#nbfl-federation")
        hint = panel.locator(".nbfl-fed-view")
        hint.wait_for(timeout=60_000)
        assert "Detach" in hint.inner_text() and "%fl_status" in hint.inner_text()
        panel.locator(".nbfl-fed-detach").click()
        panel.locator(".nbfl-fed-detach").wait_for(state="hidden", timeout=60_000)  # no cell waits on the run now
        assert panel.locator(".nbfl-fed-runstate").inner_text().strip() == "running"  # the run goes on

        page.locator(".jp-Notebook .jp-Cell").last.click()
        page.keyboard.press("Escape")
        page.keyboard.press("b")  # a new cell below
        page.keyboard.press("Enter")
        page.keyboard.type("%fl_status")
        page.keyboard.press("Shift+Enter")
        status_cell = page.locator(".jp-CodeCell").filter(has_text="%fl_status").first
        stop = status_cell.locator("button", has_text="Stop").first
        stop.wait_for(timeout=120_000)
        headline = status_cell.locator(".nbfl-status").last
        headline.filter(has_text="running: round").wait_for(timeout=60_000)
        status_cell.locator("button:enabled", has_text="Stop").wait_for(timeout=60_000)  # once it follows the run
        first = int(re.search(r"round (\d+) of 10000", headline.inner_text()).group(1))
        later = re.compile(r"round (\d+) of 10000")
        deadline = time.monotonic() + 120
        while int(later.search(headline.inner_text()).group(1)) <= first:  # live, not a snapshot
            assert time.monotonic() < deadline, "the dashboard %fl_status showed stayed where it was"
            time.sleep(0.2)
        status_cell.evaluate("cell => cell.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(OUT / "reload_recovered.png"))

        stop.click()
        status_cell.locator(".nbfl-status", has_text="stopped after").wait_for(timeout=120_000)
        assert stop.is_disabled()
        panel.locator(".nbfl-fed-runstate", has_text="stopped").wait_for(timeout=60_000)
        done = int(re.search(r"stopped after (\d+) of 10000", headline.inner_text()).group(1))
        assert first <= done < 10000
