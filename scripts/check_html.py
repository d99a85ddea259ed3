"""Opens strobe's HTML reports in headless Chromium (Debian's, driven by playwright) and fails on
console errors, any network request besides the file itself, or missing or empty charts; saves a
full-page screenshot of each.

usage: check_html.py SCREENSHOT_DIR REPORT.html[:MIN_CHARTS] ...
"""
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    shots = Path(sys.argv[1])
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        for arg in sys.argv[2:]:
            path, _, least = arg.partition(":")
            least = int(least or 1)
            url = Path(path).resolve().as_uri()
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            errors, requests = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.wait_for_load_state("networkidle")
            if errors:
                fail(f"{path}: console errors: {errors}")
            others = [r for r in requests if r != url]
            if others:
                fail(f"{path}: fetched {others}; a report must be self-contained")
            charts = page.locator("figure.chart svg")
            n = charts.count()
            if n < least:
                fail(f"{path}: {n} charts, expected at least {least}")
            for i in range(n):
                box = charts.nth(i).bounding_box()
                if not box or box["width"] < 300 or box["height"] < 150:
                    fail(f"{path}: chart {i} is not drawn at a readable size: {box}")
                # A chart with data has a line, bars or markers beyond the axes.
                marks = charts.nth(i).locator("polyline, rect, circle").count()
                if marks < 5:
                    fail(f"{path}: chart {i} looks empty ({marks} marks)")
            if page.locator("text=cannot draw this chart").count():
                fail(f"{path}: a chart could not be drawn")
            out = shots / (Path(path).stem + ".png")
            page.screenshot(path=str(out), full_page=True)
            print(f"ok: {path}: {n} charts, no console errors, no requests; screenshot {out}")
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
