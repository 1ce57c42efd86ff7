"""``ganrt serve``'s web page in a real browser: Debian's chromium, headless, driven by selenium through the system's
chromedriver (no browser is downloaded). The test changes the class and the seed, moves the walk's slider and drops
an image on the upscaler, and checks the pixels the browser decoded change each time.

``GANRT_SERVE_SCREENSHOT=docs/serve-page.png`` also saves the browser's screenshot there (docs/serve.md shows it).
"""

from __future__ import annotations

import io
import os
import shutil
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="ganrt serve needs the 'serve' extra")
pytest.importorskip("uvicorn", reason="ganrt serve needs the 'serve' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the page test drives chromium with selenium (dev extra)")

from PIL import Image
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from ganrt.serve.config import ServeConfig
from tests.serve_server import Running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")

# every <img> of a grid: loaded, and its pixels as the browser decoded them (a canvas of the same origin)
PIXELS = """
const imgs = [...document.querySelectorAll(arguments[0] + ' img')];
if (!imgs.length || imgs.some((i) => !i.complete || !i.naturalWidth)) return null;
return imgs.map((img) => {
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return [img.getAttribute('src'), Array.from(g.getImageData(0, 0, c.width, c.height).data.filter((_, k) => k % 4 === 0))];
});
"""


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,1750"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _grid(driver, selector: str, after: list | None = None, timeout: float = 30) -> list:
    """The grid's (src, pixels) once every image has loaded (and its sources differ from ``after``'s)."""
    def ready(d):
        got = d.execute_script(PIXELS, selector)
        if got is None or (after is not None and [s for s, _ in got] == [s for s, _ in after]):
            return False
        return got
    return WebDriverWait(driver, timeout).until(ready)


def _changed(before: list, after: list) -> bool:
    return all(not np.array_equal(a[1], b[1]) for a, b in zip(before, after))


def test_page_class_seed_walk_and_upscaler(browser, tmp_path):
    with Running(ServeConfig(models=("fashion-cgan", "sr-x2"))) as s:
        browser.get(s.url + "/")
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "gen-class").get_attribute("disabled") is None
                                         and len(Select(d.find_element(By.ID, "gen-class")).options) == 11)
        first = _grid(browser, "#gen-grid")
        assert len(first) == 16 and all(len(p) == 32 * 32 for _, p in first)
        # the images the browser shows are the API's images
        src0 = first[0][0]
        assert np.array_equal(np.asarray(first[0][1]), np.asarray(Image.open(io.BytesIO(s.get(src0)[2]))).reshape(-1))

        Select(browser.find_element(By.ID, "gen-class")).select_by_value("7")  # Sneaker
        by_class = _grid(browser, "#gen-grid", after=first)
        assert all("label=7" in src for src, _ in by_class)
        assert sum(not np.array_equal(a[1], b[1]) for a, b in zip(first, by_class)) >= 14  # image i of class i%10 vs 7

        seed = browser.find_element(By.ID, "gen-seed")
        seed.clear()
        seed.send_keys("42")
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", seed)
        by_seed = _grid(browser, "#gen-grid", after=by_class)
        assert all("/images/42/" in src for src, _ in by_seed) and _changed(by_class, by_seed)

        walk0 = _grid(browser, "#walk-grid")
        slider = browser.find_element(By.ID, "walk-t")
        browser.execute_script("arguments[0].value = 16; arguments[0].dispatchEvent(new Event('input'))", slider)
        walk_half = _grid(browser, "#walk-grid", after=walk0)
        assert all("t=0.5000" in src for src, _ in walk_half) and _changed(walk0, walk_half)

        # the upscaler: an image through the file input (what a drop hands the same function)
        photo = tmp_path / "photo.png"
        rng = np.random.default_rng(0)
        Image.fromarray(np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))).save(photo)
        browser.find_element(By.ID, "up-file").send_keys(str(photo))
        sizes = WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "const a = document.getElementById('up-bicubic'), b = document.getElementById('up-model-out');"
            "return a.naturalWidth && b.naturalWidth ? "
            "[a.naturalWidth, a.naturalHeight, b.naturalWidth, b.naturalHeight] : null"))
        assert sizes == [128, 96, 128, 96]
        assert browser.find_element(By.ID, "error").text == ""
        shot = os.environ.get("GANRT_SERVE_SCREENSHOT")
        if shot:
            browser.execute_script("window.scrollTo(0, 0)")
            time.sleep(0.2)
            browser.save_screenshot(shot)
