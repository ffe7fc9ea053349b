"""The page at / in a real headless Chromium (the Debian `chromium` package, driven by Playwright):
upload a photo, see the box and the emotion drawn on the canvas and the bars listed.

Without any Chromium on the machine these tests are skipped with the reason, and the rest of the
suite runs; CI sets FER_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

import os
import re
import shutil
import subprocess

import httpx
import pytest
from playwright.sync_api import expect

from tests.api.conftest import encode

# Looked for in this order; FER_CHROMIUM names one explicitly.
CHROMIUM_COMMANDS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NO_BROWSER = (
    "no Chromium on this machine, so the browser tests are skipped: install Debian's `chromium` package "
    "(`make test` tries apt-get), or Playwright's own with `.venv/bin/python -m playwright install chromium`"
)
# Named by the page's app.js; the test reads the box color back from the canvas.
EMOTION_COLORS = {
    "angry": (0xD6, 0x27, 0x28),
    "disgust": (0x8C, 0x56, 0x4B),
    "fear": (0x94, 0x67, 0xBD),
    "happy": (0x2C, 0xA0, 0x2C),
    "sad": (0x1F, 0x77, 0xB4),
    "surprise": (0xFF, 0x7F, 0x0E),
    "neutral": (0x7F, 0x7F, 0x7F),
}


def find_chromium(playwright) -> str | None:
    """FER_CHROMIUM, else a Chromium on PATH (Debian's package), else the one Playwright installed, if any."""
    if os.environ.get("FER_CHROMIUM"):
        return os.environ["FER_CHROMIUM"]  # asked for by name: a wrong path fails in launch, loudly
    for command in CHROMIUM_COMMANDS:
        if path := shutil.which(command):
            return path
    bundled = playwright.chromium.executable_path  # where `playwright install chromium` puts it
    return bundled if os.path.exists(bundled) else None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser to drive; listed first by the tests, so a machine without one skips before any
    model or server starts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        found = find_chromium(playwright)
    if found is None:
        if os.environ.get("FER_REQUIRE_BROWSER") == "1":
            pytest.fail(NO_BROWSER)
        pytest.skip(NO_BROWSER)
    return found


@pytest.fixture
def browser_page(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                # A synthetic camera (a moving test pattern) and no permission prompt, for the webcam test.
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        browser.close()
        assert not errors, errors  # no script errors on the page


def test_uploading_a_photo_draws_the_face_and_its_emotion(browser_page, live_server, astronaut, tmp_path):
    url = live_server()
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode(astronaut))
    expected = httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", photo.read_bytes())}).json()["faces"][0]

    page = browser_page
    page.goto(url)
    expect(page.locator("#status")).to_have_text(re.compile(r"^Model tiny@"))
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#faces li.face")

    assert page.locator("#faces li.face").count() == 1
    title = page.locator("#faces li.face h2").inner_text()
    assert expected["emotion"] in title
    assert page.locator("#faces li.face .bar").count() == 7
    assert page.locator("#status").inner_text().startswith("1 face in")

    # The canvas shows the photo at its own size, with the box drawn in the emotion's color.
    size = page.evaluate("[document.getElementById('canvas').width, document.getElementById('canvas').height]")
    assert size == [512, 512]
    x, y, w, h = expected["box"]
    pixel = page.evaluate(
        "([x, y]) => Array.from(document.getElementById('canvas').getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y + h // 2],  # the middle of the box's left edge
    )
    assert tuple(pixel[:3]) == EMOTION_COLORS[expected["emotion"]]


def test_an_image_the_server_refuses_shows_its_error(browser_page, live_server, astronaut, tmp_path):
    url = live_server()
    gif = tmp_path / "astronaut.gif"  # the browser shows GIFs; the server accepts JPEG, PNG, WEBP, BMP
    gif.write_bytes(encode(astronaut, "GIF"))
    page = browser_page
    page.goto(url)
    page.set_input_files("#file", str(gif))
    page.wait_for_selector("#status.error")
    assert "GIF images are not accepted" in page.locator("#status").inner_text()
    assert page.locator("#faces li.face").count() == 0


def test_webcam_mode_streams_frames_to_the_server(browser_page, live_server):
    url = live_server()
    page = browser_page
    page.goto(url)
    page.click("#webcam")
    # Chromium's fake camera shows a test pattern without faces: frames go out and answers come back.
    expect(page.locator("#status")).to_have_text(re.compile(r"^0 faces in [0-9.]+ ms"), timeout=20_000)
    assert page.locator("#webcam").inner_text() == "Stop webcam"
    frames = httpx.get(f"{url}/metrics").text
    assert 'fer_requests_total{route="/v1/predict",status="200"}' in frames
    size = page.evaluate("[document.getElementById('canvas').width, document.getElementById('canvas').height]")
    assert size[0] > 0 and size[1] > 0
    page.click("#webcam")
    assert page.locator("#webcam").inner_text() == "Start webcam"


@pytest.fixture(scope="module")
def runs_without_chromium(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """This file's upload test in pytests of their own, on a machine where no Chromium can be found:
    as `make test` runs it ("skip") and as `.ci/run` does ("require"). The two start together: each
    spends its seconds importing, and two cores do that side by side."""
    from tests.conftest import run_python_together

    tmp_path = tmp_path_factory.mktemp("no-chromium")
    clean = {"FER_CHROMIUM": None, "PATH": str(tmp_path), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "no-browsers")}
    test = "tests/api/test_browser.py::test_uploading_a_photo_draws_the_face_and_its_emotion"
    command = ["-m", "pytest", "-p", "no:cacheprovider", test]
    modes = {"skip": {"FER_REQUIRE_BROWSER": None}, "require": {"FER_REQUIRE_BROWSER": "1"}}
    results = run_python_together(*[(command, {**clean, **extra}) for extra in modes.values()], timeout=120)
    return dict(zip(modes, results))


def test_without_any_chromium_the_browser_tests_are_skipped_and_say_why(runs_without_chromium):
    result = runs_without_chromium["skip"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "no Chromium on this machine" in result.stdout
    assert "playwright install chromium" in result.stdout  # what to do about it


def test_ci_turns_the_missing_chromium_into_a_failure(runs_without_chromium):
    result = runs_without_chromium["require"]
    assert result.returncode == 1 and "no Chromium on this machine" in result.stdout
