"""The lambda explorer in a real browser: JupyterLab on 127.0.0.1 driven by headless Chromium.

Starts JupyterLab (random token, free port, fresh settings/workspace/config folders, a temporary
copy of the notebooks, smoke mode, an isolated run cache), opens notebook 08 in Debian's chromium
through Playwright, runs all cells, moves the lambda slider with the keyboard and checks that the
slider's readout and the plot image change. Needs `chromium` (apt) and `playwright` (pip; its own
browser download is not used). A missing browser is a failure with instructions, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "08_lambda_explorer.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: JupyterLab settings that keep toasts and update checks out of the way.
QUIET_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
}


def chromium_path() -> str:
    """Debian's chromium (or $PSP_LITE_CHROMIUM); fails, never skips, when there is none."""
    for candidate in (os.environ.get("PSP_LITE_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("no chromium found: install Debian's browser (apt-get install chromium, as "
                ".ci/run does) or point PSP_LITE_CHROMIUM at a Chromium binary.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on a temporary copy of the notebooks; yields the notebook's URL."""
    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp_path / "lab-settings"
    for name, text in QUIET_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {**os.environ, "PSP_LITE_SMOKE": "1", "PSP_LITE_CACHE": str(tmp_path / "cache"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}
    env.pop("MPLBACKEND", None)  # the kernel's default: the inline backend
    token, port = secrets.token_hex(16), free_port()
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={notebooks}",
         "--allow-root", "--ServerApp.port_retries=0", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n"
                            f"{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not answer within 90 s")
                time.sleep(0.5)
        yield f"{base}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        # anything the server started and left behind (its own process group)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.mark.browser
@pytest.mark.notebook
def test_browser_lambda_slider_redraws_the_plot(jupyterlab: str, tmp_path: Path) -> None:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(jupyterlab)
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
            # the kernel must be up before "Run All", or the run requests go nowhere
            page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(
                timeout=60_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.locator(".lm-Menu").get_by_text("Run All Cells", exact=True).click()
            # the notebook's last output: every cell, the redraw timing included, has run
            page.get_by_text("Noise: two standard errors").wait_for(timeout=150_000)
            slider = page.locator(".widget-slider", has=page.locator(".widget-label",
                                                                     has_text="λ")).first
            readout = slider.locator(".widget-readout")
            image = page.locator("img.widget-image").first
            image.wait_for(timeout=10_000)
            before_value, before_src = readout.inner_text(), image.get_attribute("src")
            assert before_src and before_src.startswith("blob:"), before_src

            slider.locator(".noUi-handle").first.focus()
            pressed = time.perf_counter()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "([el, src]) => el.getAttribute('src') !== src",
                arg=[image.element_handle(), before_src], timeout=20_000)
            latency = time.perf_counter() - pressed
            after_value = readout.inner_text()
            assert after_value != before_value, f"readout stayed {before_value!r}"
            assert after_value == "1.0e-02" and before_value == "1.0e-03"
            status = page.locator(".widget-html", has_text="redraw").first.inner_text()
            assert "λ=1e-02" in status, status
            print(f"browser: key press -> new image {1000 * latency:.0f} ms; "
                  f"whole test {time.perf_counter() - start:.0f} s")
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            (tmp_path / "failure.html").write_text(page.content())
            print(f"screenshot and page: {tmp_path / 'failure.png'}, failure.html")
            raise
        finally:
            browser.close()
