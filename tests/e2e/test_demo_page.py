"""The demo page at `/` and the offline docs, in a real headless browser (Debian's chromium
driven by Playwright; no browser is downloaded), against a real server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from scripts.launch import ServerProcess
from tests.conftest import IN_CI

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "test-artifacts"
README_SHOT = ROOT / "docs" / "img" / "demo.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WEEKS = 120
KEY = "demo key/+=?~"  # characters a WebSocket subprotocol cannot carry unencoded


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # the shipped CO2 model, with API keys on: the page must send the key everywhere
    log_dir = tmp_path_factory.mktemp("demo")
    keys = json.dumps([KEY])
    server = ServerProcess.seqserve(None, log_dir, SEQSERVE_SECURITY__API_KEYS=keys)
    server.start()
    yield server
    server.stop()


def _offline_page(browser: Browser, base_url: str) -> tuple[Page, list[str]]:
    """A page that may reach the server under test and nothing else (and what else it tried)."""
    context = browser.new_context(viewport={"width": 1240, "height": 900})
    outside: list[str] = []

    def route(request_route: Route) -> None:
        url = request_route.request.url
        if url.startswith((base_url, "data:", "blob:")):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    context.route("**/*", route)
    return context.new_page(), outside


def test_demo_streams_the_series_and_plots_the_apis_answers(
    browser: Browser, server: ServerProcess
) -> None:
    page, outside = _offline_page(browser, server.url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(f"localStorage.setItem('seqserve.apiKey', {json.dumps(KEY)})")
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelector('#model').options.length > 0")
    assert page.input_value("#model") == "co2"
    page.fill("#weeks", str(WEEKS))
    page.fill("#delay", "0")
    page.click("#start")
    page.wait_for_function(
        f"window.seqserveDemo.done && window.seqserveDemo.points.length === {WEEKS}",
        timeout=120_000,
    )
    demo = page.evaluate("window.seqserveDemo")
    assert demo["error"] is None, demo["error"]
    assert page.get_attribute("#chart", "data-points") == str(WEEKS)
    assert page.text_content("#step") == str(WEEKS)

    # the plotted values are the API's own answers for the same weeks
    series = json.loads((ROOT / "service" / "static" / "co2.json").read_text())["values"]
    actual = [p["actual"] for p in demo["points"]]
    assert actual == series[:WEEKS]
    auth = {"X-API-Key": KEY}
    predicted = httpx.post(
        f"{server.url}/v1/models/co2/predict",
        json={"inputs": [[[v] for v in actual]], "horizon": 13},
        headers=auth,
    ).json()
    assert [p["week"] for p in demo["points"]] == list(range(WEEKS))
    for point, expected in zip(demo["points"], predicted["outputs"][0], strict=True):
        assert point["predicted"] == pytest.approx(expected[0], abs=1e-6)
    # the fan: 13 weeks from the state after the last week, as the API forecasts them
    assert demo["forecastStep"] == WEEKS
    assert len(demo["forecast"]) == 13
    session = httpx.post(
        f"{server.url}/v1/sessions/{demo['sessionId']}/forecast",
        json={"horizon": 13},
        headers=auth,
    ).json()
    assert session["step"] == WEEKS
    for shown, expected in zip(demo["forecast"], session["forecast"], strict=True):
        assert shown == pytest.approx(expected[0], abs=1e-6)
    for shown, expected in zip(demo["forecast"], predicted["forecast"][0], strict=True):
        assert shown == pytest.approx(expected[0], abs=1e-4)  # stateless rollout: same model

    assert errors == []
    assert outside == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
    if not IN_CI:  # the README's picture is refreshed by hand-run tests, never by CI
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(README_SHOT), full_page=True)


@pytest.mark.parametrize(("path", "ready"), [("/docs", ".opblock"), ("/redoc", "h1")])
def test_docs_render_with_no_network(
    browser: Browser, server: ServerProcess, path: str, ready: str
) -> None:
    page, outside = _offline_page(browser, server.url)
    page.goto(server.url + path)
    page.wait_for_selector(ready, timeout=60_000)
    assert "seqserve" in page.content()
    assert outside == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{path.strip('/')}.png"))
