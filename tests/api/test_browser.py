"""The page at / in a real headless Chromium (the Debian `chromium` package, driven by Playwright):
upload a photo, see the box and the emotion drawn on the canvas and the bars listed."""

import os
import re
import shutil

import httpx
import pytest
from playwright.sync_api import expect

from tests.api.conftest import encode

CHROMIUM = os.environ.get("FER_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
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


@pytest.fixture
def browser_page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs the Debian package `chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
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


def test_uploading_a_photo_draws_the_face_and_its_emotion(live_server, browser_page, astronaut, tmp_path):
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


def test_an_image_the_server_refuses_shows_its_error(live_server, browser_page, astronaut, tmp_path):
    url = live_server()
    gif = tmp_path / "astronaut.gif"  # the browser shows GIFs; the server accepts JPEG, PNG, WEBP, BMP
    gif.write_bytes(encode(astronaut, "GIF"))
    page = browser_page
    page.goto(url)
    page.set_input_files("#file", str(gif))
    page.wait_for_selector("#status.error")
    assert "GIF images are not accepted" in page.locator("#status").inner_text()
    assert page.locator("#faces li.face").count() == 0


def test_webcam_mode_streams_frames_to_the_server(live_server, browser_page):
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
