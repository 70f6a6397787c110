"""The lambda explorer in a real headless Chromium, in JupyterLab and in Voila.

Each test serves notebook 08 on 127.0.0.1 (free port, random token, smoke mode, an isolated run
cache; tests/browser_harness.py), waits for the explorer's image, moves the λ slider with the
keyboard and checks that the image is drawn again. The browser is Playwright's own Chromium when
installed, else Debian's `chromium`; with neither the tests skip saying how to get one, and fail
in CI (`CI=true`). `pytest -k voila` runs the Voila one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_harness import (
    GET_A_BROWSER,
    ROOT,
    Chromium,
    browser_page,
    chromium_for,
    find_chromium,
    free_port,
    image_bytes,
    lambda_slider,
    port_open,
    press_right_and_wait_for_a_new_image,
    server_env,
    serving,
    url_answers,
)
from conftest import missing_requirement

NOTEBOOK = "08_lambda_explorer.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"
#: JupyterLab settings that keep toasts and update checks out of the way.
QUIET_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
}


# ----------------------------------------------------------------------------- finding a browser


def executable(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def no_system_chromium(monkeypatch, tmp_path):
    """A PATH without any chromium and no $PSP_LITE_CHROMIUM."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("PSP_LITE_CHROMIUM", raising=False)
    monkeypatch.setattr("browser_harness.DEBIAN_CHROMIUMS", ("chromium", "chromium-browser"))


def test_playwrights_chromium_comes_first_then_debians(no_system_chromium, monkeypatch,
                                                        tmp_path):
    playwright = executable(tmp_path / "ms-playwright" / "chrome")
    debian = executable(tmp_path / "bin" / "chromium")
    assert find_chromium(str(tmp_path / "not-installed" / "chrome")) is None
    assert find_chromium(playwright) == Chromium(playwright, "Playwright's Chromium")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_chromium(playwright) == Chromium(playwright, "Playwright's Chromium")
    assert find_chromium(None) == Chromium(debian, "Debian's chromium")
    assert find_chromium(str(tmp_path / "not-installed" / "chrome")) == \
        Chromium(debian, "Debian's chromium")
    chosen = executable(tmp_path / "mine" / "chrome")
    monkeypatch.setenv("PSP_LITE_CHROMIUM", chosen)
    assert find_chromium(playwright) == Chromium(chosen, "$PSP_LITE_CHROMIUM")


class NoPlaywrightChromium:
    class chromium:  # noqa: N801 - mimics playwright's attribute
        executable_path = "/nonexistent/ms-playwright/chrome"


def test_without_a_browser_the_tests_skip_saying_how_to_get_one(no_system_chromium, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        chromium_for(NoPlaywrightChromium)
    assert str(info.value) == f"no Chromium for the browser tests; {GET_A_BROWSER}"
    assert "python -m playwright install chromium" in GET_A_BROWSER
    assert "apt-get install chromium" in GET_A_BROWSER


def test_without_a_browser_ci_fails(no_system_chromium, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no Chromium.*CI=true.*playwright install"):
        chromium_for(NoPlaywrightChromium)


# ----------------------------------------------------------------------------- JupyterLab


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
    env = {**server_env(tmp_path), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces")}
    token, port = secrets.token_hex(16), free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--ServerApp.token={token}",
               f"--ServerApp.root_dir={notebooks}", "--allow-root", "--ServerApp.port_retries=0",
               "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with serving(command, env, tmp_path / "jupyterlab.log",
                 lambda: url_answers(f"{base}/api/status?token={token}"), "JupyterLab"):
        yield f"{base}/lab/tree/{NOTEBOOK}?token={token}"


@pytest.mark.browser
@pytest.mark.notebook
def test_browser_lambda_slider_redraws_the_plot(jupyterlab: str, tmp_path: Path) -> None:
    start = time.perf_counter()
    with browser_page(tmp_path) as page:
        page.goto(jupyterlab)
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
        # the kernel must be up before "Run All", or the run requests go nowhere
        page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(timeout=60_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator(".lm-Menu").get_by_text("Run All Cells", exact=True).click()
        # the notebook's last output: every cell has run
        page.get_by_text("Noise: two standard errors").wait_for(timeout=150_000)
        image = page.locator("img.widget-image").first
        image.wait_for(timeout=10_000)
        latency = slider_step_redraws(page, image, 20_000)
        print(f"browser: key press -> new image {1000 * latency:.0f} ms; "
              f"whole test {time.perf_counter() - start:.0f} s")


def slider_step_redraws(page, image, timeout_ms: int) -> float:
    """Press the right arrow on the explorer's λ slider; assert that λ moves to the smoke grid's
    next value and the image's PNG data and the status line change with it; the latency (s)."""
    slider = lambda_slider(page)
    readout = slider.locator(".widget-readout")
    slider.scroll_into_view_if_needed()  # JupyterLab renders the cells in view only
    page.wait_for_function("(el) => el.innerText.trim() !== ''", arg=readout.element_handle(),
                           timeout=timeout_ms)
    before_value, before_png = readout.inner_text(), image_bytes(image)
    assert before_png.startswith(PNG), before_png[:16]
    latency = press_right_and_wait_for_a_new_image(page, slider, image, timeout_ms)
    after_value, after_png = readout.inner_text(), image_bytes(image)
    assert (before_value, after_value) == ("1.0e-03", "1.0e+01")  # the smoke grid's next PSP λ
    assert after_png.startswith(PNG), after_png[:16]
    assert hashlib.sha1(after_png).digest() != hashlib.sha1(before_png).digest(), \
        "the image's data did not change"
    status = page.locator(".widget-html", has_text="redraw").first.inner_text()
    assert "λ=1e+01" in status, status
    return latency


# ----------------------------------------------------------------------------- Voila


@pytest.fixture
def voila(tmp_path: Path) -> Iterator[str]:
    """`voila notebooks/08_lambda_explorer.ipynb` on 127.0.0.1; yields the dashboard's URL."""
    if importlib.util.find_spec("voila") is None:
        missing_requirement("Voila is not installed",
                            'install the test extra: pip install -e ".[test]"')
    token, port = secrets.token_hex(16), free_port()
    command = [sys.executable, "-m", "voila", str(ROOT / "notebooks" / NOTEBOOK), "--no-browser",
               "--Voila.ip=127.0.0.1", f"--port={port}", "--Voila.port_retries=0",
               f"--token={token}", "--show_tracebacks=True"]
    # ready once it listens: a GET would already run the notebook on a kernel of its own
    with serving(command, server_env(tmp_path), tmp_path / "voila.log",
                 lambda: port_open(port), "Voila"):
        yield f"http://127.0.0.1:{port}/?token={token}"


@pytest.mark.browser
@pytest.mark.notebook
def test_voila_renders_the_explorer_and_its_lambda_slider_redraws_the_image(
        voila: str, tmp_path: Path) -> None:
    start = time.perf_counter()
    with browser_page(tmp_path) as page:
        # Voila runs every cell (the smoke sweep included) before it shows the widgets
        page.goto(voila, wait_until="commit", timeout=180_000)
        image = page.locator("img.widget-image").first
        image.wait_for(timeout=180_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                               arg=image.element_handle(), timeout=30_000)
        rendered = time.perf_counter() - start
        errors = page.locator(".jp-OutputArea-output[data-mime-type*='error']")
        assert errors.count() == 0, errors.first.inner_text()
        latency = slider_step_redraws(page, image, 60_000)
        print(f"voila: explorer rendered after {rendered:.0f} s; key press -> new image "
              f"{1000 * latency:.0f} ms")


@pytest.mark.browser
@pytest.mark.notebook
def test_the_projector_layout_enlarges_the_explorers_controls_too(tmp_path: Path) -> None:
    """Both layouts' explorers in one Voila page: the projector's slider readouts, labels and
    buttons are drawn 1.5 times as large as the screen's, and its λ slider still redraws."""
    import nbformat

    if importlib.util.find_spec("voila") is None:
        missing_requirement("Voila is not installed",
                            'install the test extra: pip install -e ".[test]"')
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from IPython.display import display\n"
        "from psp_lite.experiments.lambda_sweep import sweep\n"
        "from psp_lite.explorer import PROJECTOR, SCREEN, LambdaExplorer\n"
        "result = sweep('synthetic-mnist', (1e-4, 1e-3, 1e-2), (1e-4,), epochs=2,\n"
        "               train_subset=64, test_subset=32, device='cpu', progress=False)\n"
        "for layout in (SCREEN, PROJECTOR):\n"
        "    display(LambdaExplorer(result, layout=layout).ui())")]
    path = tmp_path / "two_layouts.ipynb"
    nbformat.write(nb, path)
    token, port = secrets.token_hex(16), free_port()
    command = [sys.executable, "-m", "voila", str(path), "--no-browser", "--Voila.ip=127.0.0.1",
               f"--port={port}", "--Voila.port_retries=0", f"--token={token}",
               "--show_tracebacks=True"]
    with serving(command, server_env(tmp_path), tmp_path / "voila.log",
                 lambda: port_open(port), "Voila"), browser_page(tmp_path) as page:
        page.goto(f"http://127.0.0.1:{port}/?token={token}", wait_until="commit",
                  timeout=180_000)
        images = page.locator("img.widget-image")
        images.nth(1).wait_for(timeout=180_000)
        boxes = page.locator(".psp-lite-explorer")
        assert boxes.count() == 2

        def px(box, selector: str) -> float:
            return float(box.locator(selector).first.evaluate(
                "el => getComputedStyle(el).fontSize").removesuffix("px"))

        for selector in (".widget-readout", ".widget-label", "button"):
            screen, projector = px(boxes.nth(0), selector), px(boxes.nth(1), selector)
            assert projector >= 1.45 * screen, (selector, screen, projector)
        slider = boxes.nth(1).locator(".widget-slider",
                                      has=page.locator(".widget-label", has_text="λ")).first
        press_right_and_wait_for_a_new_image(page, slider, images.nth(1), 60_000)
