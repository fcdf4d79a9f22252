"""The live page at / is open to all; the stats it polls need the API key, which the page asks for (seen in
headless Chromium)."""

from pathlib import Path

import pytest

from serve.conftest import API_KEY, MODEL_NAME
from serve.server_process import curl

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

AUTHORIZED = (f"Authorization: Bearer {API_KEY}",)


def test_the_live_page_is_open_and_its_stats_need_the_key(server):
    status, headers, page = curl(f"{server.url}/")
    assert status == 200 and headers["content-type"].startswith("text/html") and 'fetch("stats"' in page
    assert curl(f"{server.url}/stats")[0] == 401
    status, _, stats = curl(f"{server.url}/stats", headers=AUTHORIZED)
    assert status == 200 and stats["model"] == MODEL_NAME
    assert [len(counts) for counts in stats["expert_load"]["tokens_per_expert"]] == [4]  # one MoE layer, 4 experts


def test_the_live_page_asks_for_the_key_then_draws_the_expert_load_in_a_browser(server):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup_env.sh installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(f"{server.url}/")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda page: page.find_element(By.ID, "key").is_displayed())
        driver.find_element(By.ID, "key-input").send_keys(API_KEY)
        driver.find_element(By.CSS_SELECTOR, "#key button").click()
        wait.until(lambda page: len(page.find_elements(By.CSS_SELECTOR, "#load td.cell")) == 4)
        assert driver.find_element(By.ID, "model").text == MODEL_NAME
        assert not driver.find_element(By.ID, "key").is_displayed()
        errors = [entry["message"] for entry in driver.get_log("browser")
                  if entry["level"] == "SEVERE" and "401" not in entry["message"]]  # the first poll's 401 is expected
        assert errors == []
    finally:
        driver.quit()
