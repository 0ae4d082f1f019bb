"""The studio in a real browser: Playwright driving Debian's Chromium against the app launched in-process.

Picks the sample scene, builds it with the `test` preset, clicks twice on the top-down map to add two
keyframes, renders, and checks the video element plays the shot. A screenshot of every step goes to
test-output/app/ (Playwright cannot download its own browsers here: `apt-get install chromium`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_dataset

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "test-output" / "app"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory):
    import app

    shared_dataset("lego-100")
    from vista_studio.workspace import cancel_jobs

    root = tmp_path_factory.mktemp("studio-browser")
    demo = app.launch_app(root, block=False, quiet=True)
    yield demo.local_url
    demo.close()
    cancel_jobs(root)


@pytest.fixture()
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        context.close()
        browser.close()


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_for_status(page, progress_id: str, status: str, timeout_s: float) -> None:
    """Wait for a job's progress box to say `status`; fail early with its message if the job failed."""
    deadline = time.monotonic() + timeout_s
    box = page.locator(f"#{progress_id} .vista-progress")
    while time.monotonic() < deadline:
        if box.count():
            now = box.first.get_attribute("data-status")
            if now == status:
                return
            if now in ("failed", "cancelled", "interrupted"):
                raise AssertionError(f"{progress_id}: job {now}: {box.first.inner_text()}")
        time.sleep(0.5)
    raise AssertionError(f"{progress_id}: not {status} after {timeout_s} s")


@pytest.mark.browser
@pytest.mark.slow
def test_sample_build_click_path_render_in_chromium(studio_url, page):
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    page.goto(studio_url)
    page.wait_for_selector("#use-sample")
    # the page's load event restores the session and only then enables the step-1 buttons
    page.wait_for_selector("#session :text('Session workspace')")
    shoot(page, "1-start")

    # 1. photos: the sample scene
    page.click("#use-sample")
    page.wait_for_selector("#notice :text('sample scene')")
    shoot(page, "2-sample-picked")

    # 2. build with the test preset, live progress, then the scene is done
    page.locator("#preset").get_by_label("test", exact=True).check()
    page.click("#build")
    page.wait_for_selector("#build-progress .vista-progress")
    wait_for_status(page, "build-progress", "running", 120)
    time.sleep(4 * 1.5)  # a few poll ticks: the bar, the plot and the preview have moved
    shoot(page, "3-building")
    # a reload finds the session again (its token is in localStorage) and the job still running
    page.reload()
    page.wait_for_selector("#build-progress .vista-progress", timeout=60_000)
    assert page.locator("#build-progress .vista-progress").get_attribute("data-status") in ("running", "done")
    shoot(page, "3b-reloaded-while-building")
    wait_for_status(page, "build-progress", "done", 600)
    page.wait_for_selector("#map img", state="visible", timeout=60_000)
    shoot(page, "4-built")

    # 3. path: a one-second path, two clicks on the map
    seconds = page.locator("#path-seconds input[type=number]")
    seconds.fill("1")
    seconds.press("Enter")
    map_image = page.locator("#map img")
    box = map_image.bounding_box()
    map_image.click(position={"x": box["width"] * 0.2, "y": box["height"] * 0.5})
    # a map click checks the path against the scene: slow on a loaded 2-core machine, hence the long waits
    page.wait_for_selector("#notice :text('First keyframe placed')", timeout=180_000)
    map_image.click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.4})
    page.wait_for_selector("#notice :text('Keyframe 2 added')", timeout=180_000)
    # the keyframe table now has a header row and two keyframes
    page.wait_for_function("document.querySelector('#keys [role=grid]').getAttribute('aria-rowcount') >= 3")
    shoot(page, "5-path")

    # 5. render small and quickly; the video element shows the shot
    for element, value in (("#render-width input", "128"), ("#render-height input", "96"),
                           ("#render-fps input[type=number]", "12")):
        page.locator(element).first.fill(value)
        page.locator(element).first.press("Enter")
    page.click("#render")
    wait_for_status(page, "render-progress", "done", 300)
    video = page.wait_for_selector("#shot video", state="visible", timeout=60_000)
    page.wait_for_function("document.querySelector('#shot video').readyState >= 1", timeout=60_000)
    assert page.evaluate("document.querySelector('#shot video').videoWidth") == 128
    assert video.is_visible()
    shoot(page, "6-rendered")
