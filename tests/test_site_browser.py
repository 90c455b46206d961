"""A reader's view of the site: headless Chromium opens build/site/ served over HTTP, follows the links
from the home page to a table page and a figure page, and, crawling every page, finds every image
loaded and no internal link broken. Screenshots go to $CDA_SCREENSHOT_DIR (default: docs/screenshots/).

Uses the Chromium setup of tests/test_browser.py (skipped without chromium unless $CDA_REQUIRE_BROWSER=1)
and the session build of tests/test_site.py."""
from __future__ import annotations

import functools
import html
import os
import re
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from test_browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, browser_tools  # noqa: F401
from test_site import site  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.browser, pytest.mark.slow]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test's output to what fails
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # Chromium drops requests it no longer needs
        pass  # a failed page or image shows up as a broken link or image below


@pytest.fixture(scope="module")
def served(site):  # noqa: F811
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def chromium(browser_tools, tmp_path_factory):  # noqa: F811
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    tmp = tmp_path_factory.mktemp("site-chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(tmp / "driver.log")))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver, name: str) -> Path:
    folder = Path(os.environ.get("CDA_SCREENSHOT_DIR") or ROOT / "docs" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _broken_images(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")


def _click(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    link = driver.find_element(By.XPATH, f"//article//a[contains(normalize-space(.), {text!r})]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", link)


def test_from_the_home_page_to_a_table_and_a_figure(served, chromium):
    from selenium.webdriver.common.by import By

    chromium.get(served)
    assert "dataset distillation you can rerun" in chromium.title
    assert chromium.find_elements(By.CSS_SELECTOR, "article table"), "the home page shows the headline table"
    _screenshot(chromium, "site_home")
    _click(chromium, "The paper companion")
    _click(chromium, "CDA main results (Table 2)")  # a paper table
    assert "cda_table2_main_results" in chromium.current_url
    tables = chromium.find_elements(By.CSS_SELECTOR, "article table")
    assert len(tables) >= 3 and "paper (" in chromium.page_source
    _screenshot(chromium, "site_table")
    chromium.back()
    _click(chromium, "CUDD visual comparison")  # a paper figure
    assert "cudd_fig_visual_comparison" in chromium.current_url
    figures = chromium.find_elements(By.CSS_SELECTOR, "article figure img")
    assert figures and not _broken_images(chromium)
    chromium.set_window_size(1400, 2000)  # tall enough for the figure below the page's tables
    _screenshot(chromium, "site_figure")


def _links(page_html: str, base: str) -> list[str]:
    hrefs = re.findall(r"""<a\b[^>]*\bhref=["']([^"']+)["']""", page_html)
    return [urljoin(base, html.unescape(h)) for h in hrefs]


def test_every_page_loads_its_images_and_no_internal_link_is_broken(served, chromium):
    host = urlparse(served).netloc
    seen, queue, broken, no_image = set(), [served + "index.html"], [], []
    pages: dict[str, str] = {}
    while queue:
        url = queue.pop()
        page, anchor = urldefrag(url)
        if page not in pages:
            try:
                with urllib.request.urlopen(page, timeout=10) as r:
                    pages[page] = r.read().decode("utf-8", "replace") if page.endswith((".html", "/")) else ""
            except OSError as e:
                broken.append(f"{url} ({e})")
                continue
        if anchor and pages[page] and not re.search(rf"""\bid=["']{re.escape(anchor)}["']""", pages[page]):
            broken.append(f"{url} (no #{anchor} on the page)")
        if page in seen or not pages[page]:
            continue
        seen.add(page)
        chromium.get(page)
        no_image += [f"{img} on {page}" for img in _broken_images(chromium)]
        queue += [u for u in _links(pages[page], page) if urlparse(u).netloc == host]
    assert len(seen) >= 40, f"crawled only {len(seen)} pages"
    assert not broken, f"broken internal links: {broken[:20]}"
    assert not no_image, f"images that did not load: {no_image[:20]}"
