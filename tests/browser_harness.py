"""What the real-browser tests share: finding a Chromium, serving notebooks, driving the explorer.

A browser is Playwright's own Chromium when it is installed (`python -m playwright install
chromium`), else Debian's `chromium` (what .ci/run installs). With neither, the tests skip saying
how to get one, except in CI (`CI=true`), where that is a failure (tests/conftest.py).

Servers (JupyterLab, Voila) listen on 127.0.0.1 on a free port, run in their own process group
with isolated Jupyter config/runtime folders, smoke mode and a temporary run cache, and are stopped
by PID (then their whole process group) whatever happens.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import missing_requirement

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: Debian's chromium, where it installs it and under the names it may have on the PATH.
DEBIAN_CHROMIUMS = ("/usr/bin/chromium", "chromium", "chromium-browser")
GET_A_BROWSER = ("get one with `python -m playwright install chromium` (Playwright's own "
                 "Chromium; needs the internet) or `apt-get install chromium` (Debian's, as "
                 ".ci/run does), or point $PSP_LITE_CHROMIUM at a Chromium binary")


@dataclass(frozen=True)
class Chromium:
    """A Chromium binary to launch and where it came from."""

    path: str
    source: str


def find_chromium(playwright_chromium: str | None) -> Chromium | None:
    """$PSP_LITE_CHROMIUM, else Playwright's own Chromium, else Debian's; None with none of them.

    `playwright_chromium` is where Playwright keeps its Chromium (`p.chromium.executable_path`),
    which exists only after `python -m playwright install chromium`.
    """
    candidates = [(os.environ.get("PSP_LITE_CHROMIUM"), "$PSP_LITE_CHROMIUM"),
                  (playwright_chromium, "Playwright's Chromium")]
    candidates += [(shutil.which(name), "Debian's chromium") for name in DEBIAN_CHROMIUMS]
    for path, source in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return Chromium(path, source)
    return None


def chromium_for(playwright) -> Chromium:
    """The Chromium to launch with this Playwright; skips (fails in CI) when there is none."""
    try:
        expected = playwright.chromium.executable_path
    except Exception:  # Playwright raises when it knows no build for this platform
        expected = None
    found = find_chromium(expected)
    if found is None:
        missing_requirement("no Chromium for the browser tests", GET_A_BROWSER)
    return found


@contextlib.contextmanager
def browser_page(tmp_path: Path) -> Iterator:
    """A headless Chromium page (1400x1000); on a failure, saves a screenshot and the page."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_requirement("the playwright package is not installed",
                            'install the test extra: pip install -e ".[test]"')
    with sync_playwright() as p:
        chromium = chromium_for(p)
        browser = p.chromium.launch(executable_path=chromium.path, headless=True,
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        print(f"browser: {chromium.source} at {chromium.path}")
        try:
            yield page
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                (tmp_path / "failure.html").write_text(page.content())
                print(f"screenshot and page: {tmp_path / 'failure.png'}, failure.html")
            raise
        finally:
            browser.close()


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def url_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def server_env(tmp_path: Path) -> dict[str, str]:
    """Smoke mode, a temporary run cache, this checkout's psp_lite, private Jupyter folders."""
    env = {**os.environ, "PSP_LITE_SMOKE": "1", "PSP_LITE_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}
    env.pop("MPLBACKEND", None)  # the kernel's default: the inline backend
    return env


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's PID (it shuts its kernels down), then SIGKILL to its group."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)
    # anything the server started and left behind (its own process group)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGKILL)


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], log_path: Path, ready: Callable[[], bool],
            name: str, timeout: float = 90.0) -> Iterator[subprocess.Popen]:
    """Run `command` in its own process group until the block ends; yields once `ready()`."""
    with log_path.open("w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if server.poll() is not None:
                    pytest.fail(f"{name} exited ({server.returncode}):\n"
                                f"{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not answer within {timeout:.0f} s:\n"
                                f"{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield server
        finally:
            stop(server)


# ----------------------------------------------------------------------------- the explorer


def lambda_slider(page):
    """The explorer's λ slider (ipywidgets' DOM, the same in JupyterLab and Voila)."""
    return page.locator(".widget-slider",
                        has=page.locator(".widget-label", has_text="λ")).first


def image_bytes(image) -> bytes:
    """The bytes the browser shows in an <img> (its blob: or data: URL, fetched in the page)."""
    encoded = image.evaluate("""async (img) => {
        const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
        let text = "";
        for (let i = 0; i < bytes.length; i += 0x8000) {
            text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        }
        return btoa(text);
    }""")
    return base64.b64decode(encoded)


def press_right_and_wait_for_a_new_image(page, slider, image, timeout_ms: float) -> float:
    """Focus the slider's handle, press ArrowRight, wait until the image's src changes: seconds."""
    before = image.get_attribute("src")
    slider.locator(".noUi-handle").first.focus()
    pressed = time.perf_counter()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, src]) => el.getAttribute('src') !== src",
                           arg=[image.element_handle(), before], timeout=timeout_ms)
    return time.perf_counter() - pressed
