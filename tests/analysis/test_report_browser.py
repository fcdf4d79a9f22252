"""The analysis report in a real browser: headless Chromium (Debian's, driven by Selenium) renders a small made-up
report and a real analysis's report with no console error, every image loaded, every contents link reaching a
section, and the layer picker switching the per-layer blocks. Saves screenshots (to $DSMOE_SCREENSHOT_DIR too when
set, for a person to look at)."""

import os
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.analysis.synthetic_report import NUMBERS, synthetic_report

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

VISIBLE_LAYERS = ("return [...document.querySelectorAll('[data-layer]')].filter(e => !e.hidden)"
                  ".map(e => e.dataset.layer)")


class Report(NamedTuple):
    name: str
    path: Path
    numbers: dict


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # a given driver: no download
    yield driver
    driver.quit()


@pytest.fixture(scope="module", params=["synthetic", "analysis"])
def report(request, tmp_path_factory):
    """The made-up report, then a real analysis's (tests/analysis/conftest.py)."""
    if request.param == "synthetic":
        return Report("synthetic", synthetic_report(tmp_path_factory.mktemp("report")), NUMBERS)
    analysis = request.getfixturevalue("analysis")
    return Report("analysis", analysis.report_path, analysis.numbers)


@pytest.fixture(scope="module")
def page(browser, report):
    browser.get(report.path.as_uri())
    return browser


def save_screenshot(driver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / name))
    if os.environ.get("DSMOE_SCREENSHOT_DIR"):
        shutil.copy(tmp_path / name, Path(os.environ["DSMOE_SCREENSHOT_DIR"]) / name)


def test_renders_without_console_errors_and_every_image_loads(page, report, tmp_path):
    assert [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"] == []
    images = page.execute_script("return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    assert images and all(loaded for _, loaded in images), [alt for alt, loaded in images if not loaded]
    save_screenshot(page, tmp_path, f"report_{report.name}_top.png")


def test_every_contents_link_reaches_a_section(page):
    targets = page.execute_script("return [...document.querySelectorAll('nav a')].map(a => a.hash.slice(1))")
    assert targets and all(page.execute_script("return !!document.getElementById(arguments[0])", t) for t in targets)


def test_the_layer_picker_shows_only_the_chosen_layers_blocks(page, report, tmp_path):
    picker = Select(page.find_element("id", "layer"))
    layers = [option.get_attribute("value") for option in picker.options]
    assert len(layers) >= 2 and set(page.execute_script(VISIBLE_LAYERS)) == {layers[0]}
    for layer in layers[1:] + layers[:1]:
        picker.select_by_value(layer)
        assert set(page.execute_script(VISIBLE_LAYERS)) == {layer}
    picker.select_by_value(layers[-1])
    page.execute_script("document.querySelector('[data-layer]').closest('section').scrollIntoView()")
    save_screenshot(page, tmp_path, f"report_{report.name}_layer_{layers[-1]}.png")
    assert [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_the_embedded_numbers_are_the_json(page, report):
    assert page.execute_script("return JSON.parse(document.getElementById('numbers').textContent)") == report.numbers
