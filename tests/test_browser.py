"""A person's view of a notebook: JupyterLab in headless Chromium runs it with Run > Run All Cells at the
smoke preset, and the page shows progress bars while it runs, then a table and a figure, with no error.

Needs Debian's `chromium` and `chromium-driver` and Selenium (the `test` extra); skipped without them
unless $CDA_REQUIRE_BROWSER=1 (CI sets it). Screenshots go to $CDA_SCREENSHOT_DIR (default: a temporary
folder); `make test-browser` keeps them in build/screenshots/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "cudd_fig_visual_comparison"  # the fastest at the smoke preset (about 15 s on 2 cores)
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--disable-breakpad", "--window-size=1400,1000")
PROGRESS = ".jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output .widget-progress"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).is_file() and CHROMEDRIVER):
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser_tools():
    why = _missing()
    if why:
        if os.environ.get("CDA_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait(what: str, ok, timeout: float, every: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = ok()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def _settings(folder: Path) -> None:
    """JupyterLab settings: every cell in the page (no windowing), and no news or update toasts."""
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                           "checkForUpdates": False}}.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def jupyterlab(browser_tools, tmp_path_factory):
    """JupyterLab without a token on a free local port, serving a copy of the notebook; the kernel runs
    at the smoke preset and writes into a temporary project folder with an empty cache."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    work = tmp / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", work)
    _settings(tmp / "settings")
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "CDA_CACHE_DIR")}
    env.update(CDA_PRESET="smoke", CDA_ROOT=str(tmp / "root"), CDA_CACHE_DIR=str(tmp / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    port = _free_port()
    log = open(tmp / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={work}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=None"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {(tmp / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                return _get(f"{url}/api/status")
            except OSError:
                return None

        _wait("JupyterLab to answer", up, 90)
        yield url, tmp
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def chromium(jupyterlab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _, tmp = jupyterlab
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(tmp / "chromedriver.log")))
    try:
        yield driver
    finally:
        driver.quit()


def _click_menu(driver, menu: str, item: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='{menu}']").click()
    _wait(f"the {item!r} menu item", lambda: driver.find_elements(
        By.XPATH, f"//div[contains(@class, 'lm-Menu-itemLabel') and text()='{item}']"), 10, 0.2)[0].click()


def _shot(driver, element, path: Path, block: str = "center") -> None:
    if element is not None:
        driver.execute_script(f"arguments[0].scrollIntoView({{block: '{block}'}});", element)
        time.sleep(0.3)
    driver.save_screenshot(str(path))


def test_jupyterlab_runs_a_notebook_and_shows_a_table_a_figure_and_progress_bars(jupyterlab, chromium):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    url, tmp = jupyterlab
    driver = chromium
    shots = Path(os.environ.get("CDA_SCREENSHOT_DIR") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    driver.get(f"{url}/lab/tree/{NOTEBOOK}.ipynb")
    _wait("the notebook to open", lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell"), 120)

    def kernel_idle():
        sessions = _get(f"{url}/api/sessions")
        return sessions and all(s["kernel"]["execution_state"] == "idle" for s in sessions)

    _wait("the kernel to start", kernel_idle, 120)
    # record every progress bar the page ever shows (tqdm closes its bars when a step ends), and every
    # widget output area: at the smoke preset a step can end before its bar's view is drawn, so a tqdm
    # widget may only leave the (hidden) output area JupyterLab made for it
    driver.execute_script("""
        window.cdaBars = []; window.cdaWidgetOutputs = 0;
        new MutationObserver(() => {
            for (const bar of document.querySelectorAll(arguments[0]))
                if (!bar.dataset.cdaSeen) { bar.dataset.cdaSeen = 1; window.cdaBars.push(bar.innerText); }
            for (const out of document.querySelectorAll('.jp-OutputArea-output.lm-Panel'))
                if (!out.dataset.cdaSeen) { out.dataset.cdaSeen = 1; window.cdaWidgetOutputs += 1; }
        }).observe(document.body, {childList: true, subtree: true});""", PROGRESS)
    _click_menu(driver, "Run", "Run All Cells")

    prompts = "return [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.innerText)"
    shot = {"any": False, "partway": False}  # a bar on the page; a bar between 1% and 99%

    def finished():
        for bar in driver.find_elements(By.CSS_SELECTOR, PROGRESS):
            try:
                partway = re.search(r"\b[1-9]\d?%", bar.find_element(By.XPATH, "..").text) is not None
                if not shot["any"] or (partway and not shot["partway"]):
                    _shot(driver, bar, shots / "jupyterlab_progress.png")
                    shot.update(any=True, partway=partway)
            except WebDriverException:  # the bar closed under us (tqdm closes it when a step ends)
                pass
        numbers = [p.strip().strip("[]:").strip() for p in driver.execute_script(prompts)]
        # done when nothing is queued or running and the kernel is idle (after an error, JupyterLab
        # leaves the later cells unnumbered)
        return "*" not in numbers and any(n.isdigit() for n in numbers) and kernel_idle() and numbers

    numbers = _wait("Run All to finish (no cell queued or running, the kernel idle)", finished, 600, 0.2)
    seconds = time.monotonic() - start

    tables = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output table")
    images = [im for im in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
              if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", im)]
    bars = driver.execute_script("return window.cdaBars")
    # the output areas stay in the page, hidden, after tqdm closes a bar: count them at the end too, and
    # bars JupyterLab drew as text (a widget shown before its manager was ready falls back to text)
    widget_outputs = max(driver.execute_script("return window.cdaWidgetOutputs") or 0, driver.execute_script(
        "return document.querySelectorAll('.jp-OutputArea-output.lm-Panel').length"))
    text_bars = driver.execute_script("""return [...document.querySelectorAll('.jp-OutputArea-output')]
        .filter(o => /\\d+%\\|/.test(o.innerText)).length""")
    _shot(driver, tables[0] if tables else None, shots / "jupyterlab_table.png")
    _shot(driver, images[0] if images else None, shots / "jupyterlab_figure.png", "start")
    errors = driver.execute_script("""return [...document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(o => o.innerText).filter(t => t.includes('Traceback'))""")
    print(f"\nRun All in JupyterLab: {seconds:.0f} s; {len(tables)} tables, {len(images)} images, "
          f"{len(bars)} progress bars drawn, {widget_outputs} widget outputs, {text_bars} text bars; screenshots in {shots}")

    assert not errors, f"the notebook shows errors: {errors[0][:2000]}"
    assert all(n.isdigit() for n in numbers), f"cells left unrun: prompts {numbers}"
    assert tables and len(tables[0].find_elements(By.TAG_NAME, "td")) > 0, "no HTML table"
    assert images, "no figure"
    assert bars or widget_outputs or text_bars, "no progress bar was shown (no tqdm widget, drawn or not, nor a text bar)"

    # what the kernel wrote is what a papermill run writes: the study's results for the smoke preset
    saved = tmp / "root" / "runs" / "results" / NOTEBOOK / "smoke.csv"  # not publish: runs/, as `cda study`
    assert saved.is_file() and saved.stat().st_size > 0
