"""What a person does in a browser: open notebook 01 in Voilà, move a control, see CUR recompute.

Voilà serves the notebook on 127.0.0.1 and runs it in a live kernel; Playwright (from PyPI)
drives Debian's Chromium (``make setup`` installs it; Playwright cannot download browsers
here). Screenshots go to build/browser/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: no background requests the machine would refuse.
ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_notebook_01(tmp_path):
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            "Debian's chromium is not installed; run `make setup` (it installs it with apt)."
        )
    notebook = tmp_path / "01_cur_sampling.ipynb"
    nb = papermill.iorw.load_notebook_node(str(ROOT / "notebooks" / "01_cur_sampling.ipynb"))
    nb = papermill.parameterize.parameterize_notebook(
        nb,
        {
            "model": "tiny-llama",
            "layers": [0, 1],
            "rank": 4,
            "widths": [64, 256],
            "ranks": [2, 4],
            "seeds": [0, 1],
            "figures_dir": str(tmp_path / "figures"),
            "interactive": True,
        },
    )
    papermill.iorw.write_ipynb(nb, str(notebook))
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            str(notebook),
            f"--port={port}",
            "--no-browser",
            "--Voila.ip=127.0.0.1",
            f"--Voila.root_dir={tmp_path}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode()[-2000:]) from None
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        raise TimeoutError("Voilà did not answer within 60 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_moving_a_control_redraws_the_sampling_figure(voila_notebook_01):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(voila_notebook_01, timeout=180_000)
        mode = page.locator(".widget-dropdown", has_text="mode").locator("select")
        mode.wait_for(timeout=180_000)
        figure = page.locator(".widget-output img").last
        figure.wait_for(timeout=60_000)
        before = figure.get_attribute("src")
        assert before.startswith("data:image/png;base64,")
        figure.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "01_explorer_inverse.png"), full_page=False)
        mode.select_option("norm")
        page.wait_for_function(
            "old => { const imgs = document.querySelectorAll('.widget-output img');"
            " return imgs.length && imgs[imgs.length - 1].src !== old; }",
            arg=before,
            timeout=60_000,
        )
        after = page.locator(".widget-output img").last.get_attribute("src")
        text = page.locator(".widget-output").last.inner_text()
        page.screenshot(path=str(SHOTS / "01_explorer_norm.png"), full_page=False)
        browser.close()
    assert after != before and after.startswith("data:image/png;base64,")
    assert "norm, r = 4" in text  # the printed statistics were recomputed for the new mode
