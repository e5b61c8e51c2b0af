"""What a person does in a browser: open notebook 01 in Voilà, move a control, see CUR recompute;
open notebooks 00, 05 and 06 in JupyterLab, run them, and follow their explorers' prompts.

Voilà and JupyterLab serve on 127.0.0.1 and run the notebooks in live kernels; Playwright (from
PyPI) drives Debian's Chromium (``make setup`` installs it; Playwright cannot download browsers
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
#: How long a whole notebook may run before its explorer shows (ms): with an empty cache it
#: computes its runs first, which on a 2-core machine busy with other work took over 4 minutes.
RUN_ALL_MS = 600_000
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


def _parameterized(name: str, folder: Path, parameters: dict) -> Path:
    """Notebook ``name`` written to ``folder`` with ``parameters`` injected, as papermill does."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            "Debian's chromium is not installed; run `make setup` (it installs it with apt)."
        )
    notebook = folder / f"{name}.ipynb"
    nb = papermill.iorw.load_notebook_node(str(ROOT / "notebooks" / f"{name}.ipynb"))
    nb = papermill.parameterize.parameterize_notebook(
        nb, {**parameters, "figures_dir": str(folder / "figures"), "interactive": True}
    )
    papermill.iorw.write_ipynb(nb, str(notebook))
    return notebook


def _serve(command: list[str], url: str, name: str):
    """Start a server process in its own session; wait until ``url`` answers."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode()[-2000:]) from None
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise TimeoutError(f"{name} did not answer within 90 s")


def _stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a server still shutting its kernels down
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture
def voila_notebook_01(tmp_path):
    parameters = {
        "model": "tiny-llama",
        "layers": [0, 1],
        "rank": 4,
        "widths": [64, 256],
        "ranks": [2, 4],
        "seeds": [0, 1],
    }
    notebook = _parameterized("01_cur_sampling", tmp_path, parameters)
    port = _free_port()
    command = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--no-browser"]
    command += ["--Voila.ip=127.0.0.1", f"--Voila.root_dir={tmp_path}"]
    proc = _serve(command, f"http://127.0.0.1:{port}/", "Voilà")
    yield f"http://127.0.0.1:{port}/"
    _stop(proc)


@pytest.fixture
def jupyterlab(tmp_path, monkeypatch):
    """JupyterLab serving notebooks 00, 05 and 06 (05 and 06 on the smoke profile's studies,
    their runs computed beforehand so the live kernel reads them from the cache)."""
    from curlora.experiment.profiles import PROFILES

    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))
    _parameterized("00_concepts", tmp_path, {})
    for name in ("05_sampling_ablation", "06_continued_training"):
        smoke = {**PROFILES["smoke"][name[:2]], "figures_dir": str(tmp_path / "figures")}
        _parameterized(name, tmp_path, smoke)
        papermill.execute_notebook(
            str(ROOT / "notebooks" / f"{name}.ipynb"),
            str(tmp_path / f"cache-run-{name}.ipynb"),
            parameters={**smoke, "interactive": False},
            progress_bar=False,
        )
    port = _free_port()
    command = [sys.executable, "-m", "jupyterlab", f"--port={port}", "--no-browser"]
    command += ["--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password="]
    command += ["--ServerApp.allow_root=True"]
    command += [f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=None"]
    proc = _serve(command, f"http://127.0.0.1:{port}/lab", "JupyterLab")
    yield f"http://127.0.0.1:{port}/lab/"
    _stop(proc)


def _run_all(page, lab: str, notebook: str) -> None:
    """Open ``notebook`` in a JupyterLab workspace of its own (so no other notebook is restored
    beside it) and run every cell from the Run menu."""
    page.goto(f"{lab}workspaces/{Path(notebook).stem}/tree/{notebook}?reset", timeout=120_000)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=120_000)
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _redraws(page, act) -> None:
    """Do ``act`` and wait until the last explorer figure is replaced by another."""
    figure = page.locator(".widget-output img").last
    figure.wait_for(timeout=120_000)
    before = figure.get_attribute("src")
    act()
    page.wait_for_function(
        "old => { const imgs = document.querySelectorAll('.widget-output img');"
        " return imgs.length && imgs[imgs.length - 1].src !== old; }",
        arg=before,
        timeout=60_000,
    )


def test_jupyterlab_explorers_follow_their_prompts(jupyterlab):
    from playwright.sync_api import sync_playwright

    from curlora import count_parameters
    from curlora.outcomes import OUTCOMES

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # Notebook 00's prompt: "set the rank to 64" — the counts are recomputed at rank 64.
        _run_all(page, jupyterlab, "00_concepts.ipynb")
        readout = page.locator(".widget-slider", has_text="rank").locator(".widget-readout")
        readout.wait_for(timeout=RUN_ALL_MS)
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("64")
        page.keyboard.press("Enter")
        expected = count_parameters("HuggingFaceTB/SmolLM2-135M-Instruct", "curlora", 64)
        page.wait_for_function(
            "n => [...document.querySelectorAll('.widget-output')].some("
            "o => o.innerText.includes(String(n)))",
            arg=expected,
            timeout=60_000,
        )
        page.locator(".widget-output").last.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "00_explorer_rank64.png"), full_page=False)
        # Notebook 05's explorer: set another outcome against eq. 4's; the printed difference
        # and the figure are redrawn.
        _run_all(page, jupyterlab, "05_sampling_ablation.ipynb")
        outcome = page.locator(".widget-dropdown", has_text="outcome").locator("select")
        outcome.wait_for(timeout=RUN_ALL_MS)
        page.locator(".widget-output img").last.wait_for(timeout=60_000)
        text_before = page.locator(".widget-output").last.inner_text()
        _redraws(page, lambda: outcome.select_option(label=OUTCOMES["output_shift"].description))
        text_after = page.locator(".widget-output").last.inner_text()
        page.locator(".widget-output").last.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "05_explorer_output_shift.png"), full_page=False)
        # Notebook 06's prompt: "show CURLoRA and LoRA alone … then switch learning to the
        # evaluation files" — each change redraws the two-axis frontier.
        _run_all(page, jupyterlab, "06_continued_training.ipynb")
        arms = page.locator(".widget-select-multiple", has_text="arms").locator("select")
        arms.wait_for(timeout=RUN_ALL_MS)
        _redraws(page, lambda: arms.select_option(["curlora", "lora"]))
        shown = arms.evaluate("s => [...s.selectedOptions].map(o => o.value)")
        _redraws(page, lambda: page.get_by_role("button", name="evaluation", exact=True).click())
        page.locator(".widget-output").last.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "06_explorer_curlora_lora_eval.png"), full_page=False)
        browser.close()
    assert shown == ["curlora", "lora"]
    assert "CURLoRA vs CURLoRA (norm sampling)" in text_before and "at one rate" in text_before
    assert text_after != text_before and "output shift" in text_after


def test_moving_a_control_redraws_the_sampling_figure(voila_notebook_01):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(voila_notebook_01, timeout=RUN_ALL_MS)
        mode = page.locator(".widget-dropdown", has_text="mode").locator("select")
        mode.wait_for(timeout=RUN_ALL_MS)
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
