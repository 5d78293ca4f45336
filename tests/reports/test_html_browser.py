"""The HTML report in a real browser: headless Debian Chromium driven by Selenium.

Skipped (with the reason) when chromium or chromedriver are not installed; CI installs both.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.findings.document import load_document
from exhunt.reports.case import Case
from exhunt.reports.html import render
from tests.reports.evidence import XSS_UA, build_case

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromium-driver (Debian packages) are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,2000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small hand-made case whose IIS log carries a script in a user agent."""
    tmp = tmp_path_factory.mktemp("browser-case")
    result = build_case(tmp)
    path = tmp / "report.html"
    with path.open("wb") as out:
        render(Case(load_document(result.case_dir), result.case_dir / "store"), out)
    return path


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo collection (benign traffic plus a ProxyLogon chain), scanned with --out."""
    tmp = tmp_path_factory.mktemp("browser-demo")
    generate(tmp / "evidence", DemoSpec(scale=0.25))
    scan([tmp / "evidence"], ScanOptions(out=tmp / "case", host="EXCH01", jobs=1, quiet=True, progress=False))
    return tmp / "case" / "report.html"


def _console_errors(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_demo_report_shows_verdict_chart_and_findings(driver, demo_report: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver.get(demo_report.as_uri())
    assert driver.title.startswith("exhunt report")
    assert _console_errors(driver) == []
    verdict = driver.find_element(By.ID, "verdict").text
    assert "EXCH01" in verdict and "compromised" in verdict
    marks = driver.find_elements(By.CSS_SELECTOR, "#timeline circle.mark")
    assert len(marks) >= 5 and all(m.is_displayed() for m in marks)
    assert driver.find_element(By.ID, "timeline").size["height"] > 100
    assert len(driver.find_elements(By.CSS_SELECTOR, "#axis text.tick")) >= 2
    findings = driver.find_elements(By.CSS_SELECTOR, "article.finding")
    assert len(findings) >= 5
    assert any("CVE-2021-26855" in f.text for f in findings)
    assert driver.find_element(By.ID, "timeline-range").text.endswith("UTC"), "the zoom script ran"
    shot = tmp_path / "report.png"
    driver.set_window_size(1280, 2400)
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_timeline_zooms(driver, report: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver.get(report.as_uri())
    def visible() -> int:
        return len([m for m in driver.find_elements(By.CSS_SELECTOR, "#timeline circle.mark")
                    if m.get_attribute("visibility") != "hidden"])
    before, span = visible(), driver.find_element(By.ID, "timeline-range").text
    for _ in range(4):
        driver.find_element(By.ID, "zoom-in").click()
    assert driver.find_element(By.ID, "timeline-range").text != span and visible() < before
    driver.find_element(By.ID, "zoom-reset").click()
    assert visible() == before and driver.find_element(By.ID, "timeline-range").text == span
    assert _console_errors(driver) == []


def test_script_from_a_log_line_does_not_run_and_shows_as_text(driver, report: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver.get(report.as_uri())
    assert driver.execute_script("return window.pwned === undefined")
    assert "pwned" not in driver.title
    texts = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "td.excerpt code")]
    assert any(XSS_UA in t for t in texts), "the injected markup is shown verbatim as text"
    assert not driver.find_elements(By.CSS_SELECTOR, "main img"), "no element was created from a log line"
    assert _console_errors(driver) == []
