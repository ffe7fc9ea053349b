"""Screenshot of the API's browser page after it analysed an image (for the README).

    python scripts/screenshot_page.py --url http://127.0.0.1:8000 --image astronaut.jpg --out docs/api-page.png

Drives the Debian `chromium` package through Playwright (no browser download).
"""

import argparse
import shutil

from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--image", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(args.url)
        page.set_input_files("#file", args.image)
        page.wait_for_selector("#faces li.face, #status.error")
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
