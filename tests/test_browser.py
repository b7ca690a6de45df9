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
    settings.mkdir(parents=True)  # render every cell, so outputs below the fold are in the page
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path / 'lab'}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.allow_root=True",  # CI runs as root
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
        yield base, token
    finally:
        server.terminate()
        server.wait(30)


def test_quickstart_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    base, token = lab
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/01_quickstart.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            page.evaluate(WATCH_PLOTS)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
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
