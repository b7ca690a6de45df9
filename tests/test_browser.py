"""A person's view: JupyterLab in headless Chromium runs the quickstart end to end.

Needs Debian's chromium and Playwright's Python package (no browser download); CI
installs both (.ci/run). Elsewhere the test is skipped when chromium is missing.
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "test_browser"
CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip

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
    import json

    deadline, seen = time.monotonic() + timeout, None
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    assert CHROMIUM, "CI must install Debian's chromium (apt-get install chromium)"
    (tmp_path / "lab").mkdir()
    shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", tmp_path / "lab")
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # render every cell (outputs below the fold are in the page); no kernel dialog
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none", "autoStartDefaultKernel": true}')
    port, token = free_port(), secrets.token_hex(16)
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT / "jupyterlab.log", "w")  # the server's side of a failure
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path / 'lab'}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.allow_root=True",  # CI runs as root
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert server.poll() is None, "jupyter lab exited at start"
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base, token, tmp_path / "lab"
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def test_quickstart_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    base, token, _ = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/01_quickstart.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            wait_for_one_kernel(base, token)
            page.evaluate(WATCH_PLOTS)
            run_all_cells(page)
            output = page.locator(".jp-OutputArea-output")
            output.filter(has_text="global model test accuracy:").wait_for(state="attached", timeout=240_000)
            output.filter(has_text="controller stopped").wait_for(state="attached", timeout=60_000)
            round_cell = page.locator(".jp-CodeCell", has_text="%fl_round")
            rows = round_cell.locator("table.nbfl-clients").last.locator("tbody tr")
            assert rows.count() == 4
            assert sorted(rows.locator("td").nth(i * 8).inner_text() for i in range(4)) == [
                "site-1", "site-2", "site-3", "site-4"
            ]
            plots = page.evaluate("() => window.nbflPlots.size")
            assert plots >= 2, "the plot did not change between rounds"
            round_cell.scroll_into_view_if_needed()
            round_cell.evaluate("cell => cell.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(OUT / "quickstart.png"))
        except Exception:
            page.screenshot(path=str(OUT / "failure.png"))  # what the page showed when it went wrong
            raise
        finally:
            browser.close()

