"""The Models page in a real browser (Debian's Chromium driven by Playwright) against the real
api-server of tests/ui/conftest.py: log in on Airflow's own login page, open "Models" from Airflow's
navigation (the page renders in Airflow's iframe at /plugin/models), read the versions table, open a
version and read its verdict and lineage graph; markup in names stays text; a user without access is
told so; an expired session is told to log in again.

Screenshots go to ``tests/ui/artifacts/`` (or ``$AIRFLOW_ML_UI_ARTIFACTS``); their paths are printed.
Without /usr/bin/chromium or the playwright package the tests skip, and fail under
``AIRFLOW_ML_TESTS_STRICT=1``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import pytest

from tests.requirements import requirement_missing
from tests.support import ROOT
from tests.ui.conftest import MODEL, SECRET_MODEL, XSS_DESCRIPTION, XSS_MODEL

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, FrameLocator, Page

pytestmark = pytest.mark.deployment

CHROMIUM = Path(os.environ.get("AIRFLOW_ML_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("AIRFLOW_ML_UI_ARTIFACTS", ROOT / "tests" / "ui" / "artifacts"))
#: Reading a version walks its lineage in MLflow: allow for a slow first request.
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium, checked before ``ui_server`` is built (a session fixture listed first is set up first)."""
    if not CHROMIUM.is_file():
        requirement_missing(
            f"no Chromium at {CHROMIUM}",
            "Install Debian's package (apt-get install -y chromium) or point AIRFLOW_ML_CHROMIUM at a Chromium.",
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        requirement_missing(
            "the playwright package is not installed",
            "pip install playwright (the dev extra); `playwright install` is not needed, Debian's Chromium is used.",
        )
    with sync_playwright() as p:
        # Chromium's own sandbox cannot start as root (containers, CI).
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def problems() -> list[str]:
    """Script errors and dialogs seen by the pages of a test (a dialog means markup ran as script)."""
    return []


def new_page(
    browser: Browser, problems: list[str], scheme: Literal["light", "dark"] = "light"
) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))

    def on_dialog(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return context, page


def shot(page: Page, name: str, framed: bool = False) -> Path:
    """A full-page screenshot; ``framed``: the page is in Airflow's iframe, which scrolls on its own, so
    the window is made as tall as the iframe's content for the picture, then put back."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = page.viewport_size
    if framed and size:
        inner = next(f for f in page.frames if f.parent_frame is not None and "/ml/" in f.url)
        inner.evaluate("window.scrollTo(0, 0)")
        height = int(inner.evaluate("document.documentElement.scrollHeight"))
        page.set_viewport_size({"width": size["width"], "height": min(max(height + 40, size["height"]), 8000)})
    page.screenshot(path=str(path), full_page=True)
    if framed and size:
        page.set_viewport_size(size)
    print(f"screenshot: {path}")
    return path


def login(page: Page, url: str, user: str, password: str) -> None:
    """Through Airflow's real login page (SimpleAuthManager's form), which sets the ``_token`` cookie."""
    page.goto(f"{url}/auth/login/?next={quote(url + '/', safe='')}")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda u: "/auth/login" not in u)
    assert any(c["name"] == "_token" for c in page.context.cookies()), "login set no _token cookie"


@contextmanager
def logged_in(
    browser: Browser, ui_server: dict[str, Any], problems: list[str], user: str,
    scheme: Literal["light", "dark"] = "light",
) -> Iterator[tuple[BrowserContext, Page]]:
    """A fresh browser context logged in as ``user``; closed afterwards, and no script error or dialog
    may have happened in it."""
    context, page = new_page(browser, problems, scheme)
    try:
        login(page, ui_server["url"], user, ui_server["users"][user])
        yield context, page
    finally:
        context.close()
    assert not problems, problems


def models_frame(page: Page) -> FrameLocator:
    return page.frame_locator("iframe[title='Models']")


def wait_rendered(frame: FrameLocator | Page, view: str) -> None:
    """The page marks <body data-view=...> once a view (or its error) is on screen, and clears it
    when it starts loading another."""
    frame.locator(f"body[data-view={view}]").wait_for(state="attached")


def test_models_from_airflow_navigation_to_a_version_verdict_and_lineage(
    browser: Browser, ui_server: dict[str, Any], problems: list[str]
) -> None:
    url = ui_server["url"]
    with logged_in(browser, ui_server, problems, "admin") as (context, page):
        page.goto(f"{url}/")
        # "Models" sits in Airflow's navigation (category "browse"): open the menu, then the entry.
        page.get_by_role("button", name=re.compile("Browse", re.I)).click()
        page.get_by_role("menuitem", name="Models").click()
        page.wait_for_url(re.compile(r"/plugin/models"))
        frame = models_frame(page)

        wait_rendered(frame, "models")
        table = frame.locator("#models-table")
        row = table.locator("tr", has=frame.locator(f"a:text-is('{MODEL}')"))
        assert row.count() == 1, table.inner_text()
        assert "★" in row.inner_text()  # the example's first version is champion
        shot(page, "1-models-in-airflow", framed=True)

        row.locator(f"a:text-is('{MODEL}')").click()
        wait_rendered(frame, "model")
        versions = frame.locator("#versions-table tbody tr")
        assert versions.count() >= 2, frame.locator("#versions").inner_text()
        champion = frame.locator("#versions-table tbody tr.is-champion")
        assert champion.count() == 1 and champion.get_attribute("data-version") == "1"
        assert frame.locator(".metric-plot svg").count() >= 1
        assert frame.locator(".metric-plot .champion-point").count() >= 1
        # the address bar follows the page inside the iframe, so this is a deep link
        assert page.url.endswith(f"/plugin/models/ml/models/{MODEL}"), page.url
        shot(page, "2-versions", framed=True)

        # version 2: blocked by its gate (accuracy below the second run's minimum 0.999)
        frame.locator("#versions-table tbody tr[data-version='2'] td a").first.click()
        wait_rendered(frame, "version")
        verdict = frame.locator("#verdict-table")
        verdict.wait_for()
        assert "FAIL" in verdict.inner_text()
        assert "accuracy" in verdict.inner_text()
        graph = frame.locator("#lineage-graph")
        kinds = set(graph.locator(".lineage-node").evaluate_all("ns => ns.map(n => n.dataset.kind)"))
        assert {"dataset", "step", "model"} <= kinds, kinds
        assert graph.locator(".lineage-node.target").count() == 1
        assert graph.locator(".lineage-node.kind-step a[data-nav=airflow]").count() >= 1
        shot(page, "3-version-2-failed-gate", framed=True)

        # version 1, the champion, through the page's own link from the header
        frame.locator(".page-head a:text-is('v1')").click()
        wait_rendered(frame, "version")
        assert "version 1" in frame.locator("h1").inner_text()
        frame.locator("#verdict-table").wait_for()
        assert "FAIL" not in frame.locator("#verdict-table").inner_text()
        assert "★ champion" in frame.locator(".page-head").inner_text()
        frame.locator(".lineage-node.kind-step").first.click()
        assert frame.locator("#lineage-details dl").count() == 1
        shot(page, "4-version-1-champion", framed=True)

        # Back returns to the versions table (history.pushState inside the iframe)
        page.go_back()
        page.go_back()
        wait_rendered(frame, "model")
        assert frame.locator("#versions-table").count() == 1


def test_dark_colour_scheme(browser: Browser, ui_server: dict[str, Any], problems: list[str]) -> None:
    url = ui_server["url"]
    with logged_in(browser, ui_server, problems, "admin", scheme="dark") as (context, page):
        page.goto(f"{url}/ml/models/{quote(MODEL, safe='')}/versions/1")
        wait_rendered(page, "version")
        page.locator("#lineage-graph .lineage-node").first.wait_for()
        # the colour as the browser paints it (the stylesheet gives oklch(), like Airflow's own)
        channels = page.evaluate(
            """() => {
                const c = document.createElement('canvas').getContext('2d');
                c.fillStyle = getComputedStyle(document.body).backgroundColor;
                c.fillRect(0, 0, 1, 1);
                return Array.from(c.getImageData(0, 0, 1, 1).data.slice(0, 3));
            }"""
        )
        assert max(channels) < 80, f"body background {channels} is not dark"
        shot(page, "5-version-1-dark")


def test_markup_in_names_and_descriptions_is_text(
    browser: Browser, ui_server: dict[str, Any], problems: list[str]
) -> None:
    url = ui_server["url"]
    with logged_in(browser, ui_server, problems, "admin") as (context, page):
        page.goto(f"{url}/ml/")
        wait_rendered(page, "models")
        table = page.locator("#models-table")
        assert page.locator("#models-table a", has_text=XSS_MODEL).count() == 1
        assert XSS_DESCRIPTION in table.inner_text()
        assert table.locator("img, script").count() == 0  # no element was made from the markup

        page.locator("#models-table a", has_text=XSS_MODEL).click()
        wait_rendered(page, "model")
        assert page.locator("h1").inner_text() == XSS_MODEL
        assert "<b>failed</b>" in (page.locator("#versions-table").text_content() or "")  # a gate status tag, as text
        page.locator("#versions-table tbody a").first.click()
        wait_rendered(page, "version")
        assert page.locator("#view img, #view script").count() == 0
        hrefs = page.locator("#view a[href]").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert all(h.startswith(("/", "http://", "https://")) and not h.startswith("//") for h in hrefs), hrefs
        shot(page, "6-markup-as-text")


def test_a_user_without_access_is_told_so(browser: Browser, ui_server: dict[str, Any], problems: list[str]) -> None:
    url = ui_server["url"]
    with logged_in(browser, ui_server, problems, "ml_viewer") as (context, page):
        page.goto(f"{url}/ml/")
        wait_rendered(page, "models")
        assert page.locator("#models-table a", has_text=SECRET_MODEL).count() == 0

        page.goto(f"{url}/ml/models/{SECRET_MODEL}/versions/1")
        wait_rendered(page, "error")
        error = page.locator("#error")
        assert error.get_attribute("data-status") == "403"
        assert f"You do not have access to version 1 of model {SECRET_MODEL}" in error.inner_text()
        shot(page, "7-no-access")

        page.goto(f"{url}/ml/models/no_such_model")
        wait_rendered(page, "error")
        assert page.locator("#error").get_attribute("data-status") == "404"
        assert "Model no_such_model not found" in page.locator("#error").inner_text()


def test_an_expired_session_is_sent_to_the_login_page(
    browser: Browser, ui_server: dict[str, Any], problems: list[str]
) -> None:
    url = ui_server["url"]
    with logged_in(browser, ui_server, problems, "admin") as (context, page):
        page.goto(f"{url}/ml/")
        wait_rendered(page, "models")
        context.clear_cookies()  # the session ends while the page is open
        page.locator("#models-table a", has_text=MODEL).first.click()
        wait_rendered(page, "error")
        error = page.locator("#error")
        assert error.get_attribute("data-status") == "401"
        assert "Not logged in to Airflow" in error.inner_text()
        href = error.locator("a").get_attribute("href") or ""
        assert href.startswith("/auth/login/?next="), href
        error.locator("a").click()
        page.wait_for_url(re.compile(r"/auth/login"))


def test_a_dag_run_opens_the_version_it_produced(
    browser: Browser, ui_server: dict[str, Any], problems: list[str]
) -> None:
    url = ui_server["url"]
    with logged_in(browser, ui_server, problems, "admin") as (context, page):
        page.goto(f"{url}/ml/models/{quote(MODEL, safe='')}")
        wait_rendered(page, "model")
        run_id = page.locator("#versions-table tr[data-version='1'] td.run span[title]").get_attribute("title")
        assert run_id
        page.goto(f"{url}/ml/runs/breast_cancer_retrain/{quote(run_id, safe='')}")
        wait_rendered(page, "run")
        assert f"{MODEL} v1" in page.locator(".note").inner_text()
        page.locator("#verdict-table").wait_for()

        page.goto(f"{url}/ml/runs/breast_cancer_retrain/no_such_run")
        wait_rendered(page, "run")
        assert "produced no model version" in page.locator("#no-version").inner_text()
