"""``immflow ui`` in a real browser (Debian's chromium, driven by Playwright) after a demo run.

Screenshots of the run list and a run page go to ``$IMMFLOW_TEST_ARTIFACTS`` (default
``build/test-artifacts``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oss2
import pytest
from immflow.ledger import local_ledger
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.e2e import CLI, REPO
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags chromium keeps trying hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("IMMFLOW_TEST_ARTIFACTS") or REPO / "build" / "test-artifacts")


@pytest.fixture(scope="module")
def dashboard(demo: dict[str, Any]) -> Iterator[str]:
    port = demo["port_base"] + 9
    command = [*CLI, "ui", "--state-dir", str(demo["state_path"]), "--port", str(port),
               "--pipeline", str(REPO / "pipeline.yaml")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"immflow ui exited: {output}") from None
            return False

    try:
        wait_until(healthy, 30, "immflow ui answering /healthz")
    except AssertionError:
        process.kill()
        raise
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise AssertionError(
            f"no chromium at {CHROMIUM}: scripts/setup installs Debian's chromium (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()


def _upload(demo: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(upload for upload in demo["uploads"] if upload["rule"] == rule)


def test_the_run_list_shows_every_upload_with_its_final_state(
    demo: dict[str, Any], dashboard: str, page: Page
) -> None:
    page.goto(dashboard)
    for upload in demo["uploads"]:
        row = page.locator(f'tr[data-run="{upload["run_id"]}"]')
        assert row.get_attribute("data-state") == "succeeded", upload["source"]
        assert upload["source"] in row.inner_text()
    # Other tests of the session may add runs to the shared demo (test_demo.py uploads one more): the
    # count must match the rows shown, which include every upload of the demo.
    succeeded = page.locator('tr[data-state="succeeded"]').count()
    assert page.locator('[data-count="succeeded"]').inner_text() == str(succeeded)
    assert succeeded >= len(demo["uploads"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-runs.png"), full_page=True)


def test_a_run_page_draws_its_task_graph_and_shows_poster_and_video(
    demo: dict[str, Any], dashboard: str, page: Page
) -> None:
    upload = _upload(demo, "videos")
    tasks = local_ledger(demo["state_path"]).tasks_of_run(upload["run_id"])
    page.goto(f"{dashboard}/runs/{upload['run_id']}")

    nodes = page.locator("#task-graph g.node")
    assert sorted(nodes.evaluate_all("els => els.map(e => e.dataset.task)")) == sorted(
        t.task_id for t in tasks if t.task_id
    )
    edges = page.locator("#task-graph path.edge").evaluate_all(
        "els => els.map(e => [e.dataset.from, e.dataset.to])"
    )
    assert sorted(map(tuple, edges)) == sorted(
        (t.parent_task_id, t.task_id) for t in tasks if t.parent_task_id
    )

    poster = page.locator('figure[data-kind="image"] img').first
    poster.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=poster.element_handle())
    video = page.locator("video").first
    page.wait_for_function("v => v.readyState >= 1", arg=video.element_handle(), timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-run.png"), full_page=True)


def test_a_pdf_output_shows_its_first_page(demo: dict[str, Any], dashboard: str, page: Page) -> None:
    upload = _upload(demo, "documents")
    page.goto(f"{dashboard}/runs/{upload['run_id']}")
    first_page = page.locator("img.pdf-page").first
    first_page.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first_page.element_handle())


def test_the_live_list_picks_up_a_broken_upload_and_its_failure_shows_code_and_fix(
    demo: dict[str, Any], dashboard: str, page: Page
) -> None:
    page.goto(dashboard)
    before = page.locator("tr.run").count()
    endpoints = demo["endpoints"]
    bucket_name, _, key = _upload(demo, "documents")["source"].removeprefix("oss://").partition("/")
    broken_key = key.rsplit("/", 1)[0] + "/e2e-ui/broken.docx"
    bucket = oss2.Bucket(
        oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"]), endpoints["oss"], bucket_name
    )
    bucket.put_object(broken_key, os.urandom(2048))  # not a zip: no .docx at all

    row = page.locator("tr.run", has_text=broken_key)
    row.wait_for(timeout=60_000)  # appeared without a reload
    assert page.locator("tr.run").count() == before + 1
    page.wait_for_selector(f'tr.run[data-state="failed"]:has-text("{broken_key}")', timeout=120_000)

    row.locator("a").click()
    failure = page.locator(".failure").first
    assert "InvalidArgument" in failure.locator(".code").inner_text()
    assert "not a valid docx document" in failure.inner_text()
    assert "What to do" in failure.locator(".fix").inner_text()


def test_an_unknown_run_is_a_404_page_with_a_search_box(dashboard: str, page: Page) -> None:
    response = page.goto(f"{dashboard}/runs/no-such-run")
    assert response is not None and response.status == 404
    assert page.locator('form input[name="key"]').count() >= 1


def test_the_pipeline_page_draws_every_rule(dashboard: str, page: Page) -> None:
    page.goto(f"{dashboard}/pipeline")
    keys = page.locator("#pipeline-graph g.node").evaluate_all("els => els.map(e => e.dataset.node)")
    assert {"videos:match", "videos:web", "videos:sprites", "archives:unzip"} <= set(keys)
