"""The analysis report in a real browser: headless Chromium (Debian's, driven by Selenium) renders it with no console
error, every image loaded, and the layer picker switching the per-layer blocks. Saves a screenshot (to
$DSMOE_SCREENSHOT_DIR too when set, for a person to look at)."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is missing: scripts/setup_env.sh installs Debian's chromium and "
                    "chromium-driver", pytrace=False)
    pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup_env.sh installs them)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # a given driver: no download
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, analysis):
    browser.get(analysis.report_path.as_uri())
    return browser


def save_screenshot(driver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / name))
    if os.environ.get("DSMOE_SCREENSHOT_DIR"):
        shutil.copy(tmp_path / name, Path(os.environ["DSMOE_SCREENSHOT_DIR"]) / name)


def test_renders_without_console_errors_and_every_image_loads(page, tmp_path):
    assert [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"] == []
    images = page.execute_script("return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    assert images and all(loaded for _, loaded in images), [alt for alt, loaded in images if not loaded]
    save_screenshot(page, tmp_path, "report_top.png")


def test_every_contents_link_reaches_a_section(page):
    targets = page.execute_script("return [...document.querySelectorAll('nav a')].map(a => a.hash.slice(1))")
    assert targets and all(page.execute_script(f"return !!document.getElementById('{t}')") for t in targets)


def test_the_layer_picker_shows_only_the_chosen_layers_blocks(page, tmp_path, analysis):
    layers = [str(layer) for layer in analysis.numbers["moe_layers"]]
    visible = "return [...document.querySelectorAll('[data-layer]')].filter(e => !e.hidden).map(e => e.dataset.layer)"
    assert set(page.execute_script(visible)) == {layers[0]}
    picker = Select(page.find_element("id", "layer"))
    for layer in layers:
        picker.select_by_value(layer)
        assert set(page.execute_script(visible)) == {layer}
    page.execute_script("document.getElementById('tokens').scrollIntoView()")
    save_screenshot(page, tmp_path, "report_tokens.png")


def test_the_embedded_numbers_are_the_json(page, analysis):
    assert page.execute_script("return JSON.parse(document.getElementById('numbers').textContent)") == \
        analysis.numbers
