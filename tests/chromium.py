"""Headless Chromium for the tests that look at pages as a person would.

Screenshots go to `SCREENSHOTS_DIR` when it is set (`SCREENSHOTS_DIR=docs/screenshots`
refreshes the ones the docs show), else to VAR_DIR/screenshots, so that an
ordinary run leaves the work tree as it was."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

requires_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed: Debian package `chromium` (`make test-deps` installs it)",
)


def chromium(url, *args, time_budget_ms=5000):
    """Run headless Chromium on `url` with `args`; returns its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        completed = subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--user-data-dir={profile}", f"--virtual-time-budget={time_budget_ms}",
                *args, url,
            ],
            capture_output=True, text=True, timeout=120,
        )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def screenshot(url, path, width=1400, height=1800):
    path.parent.mkdir(parents=True, exist_ok=True)
    chromium(url, f"--screenshot={path}", f"--window-size={width},{height}")
    return path


def screenshots_dir():
    from django.conf import settings

    return Path(os.environ.get("SCREENSHOTS_DIR") or Path(settings.VAR_DIR) / "screenshots")


def static_files_inline(html):
    """The page as a file Chromium can open without a server: /static/ URLs
    point at the files themselves."""
    from django.contrib.staticfiles import finders

    def local(match):
        found = finders.find(match[2])
        return f'{match[1]}="{Path(found).as_uri()}"' if found else match[0]

    return re.sub(r'(href|src)="/static/([^"?#]+)"', local, html)


# Written into the page once it has laid out: how large it came out, and the
# boxes whose content is wider than they are (scrolled or clipped: cut off
# in a picture).
MEASURE = """<script>window.addEventListener('load', () => {
  const page = document.documentElement;
  document.body.dataset.pageSize = page.scrollWidth + 'x' + page.scrollHeight;
  const clipped = [...document.querySelectorAll('body *')].filter(box => !box.closest('.visually-hidden')
    && box.scrollWidth > box.clientWidth + 1 && getComputedStyle(box).overflowX !== 'visible');
  document.body.dataset.clipped = clipped.map(box => box.tagName + (box.id ? '#' + box.id : '')
    + (box.className && typeof box.className === 'string' ? '.' + box.className.split(' ').join('.') : '')).join(' ');
});</script>"""


def page_screenshot(html, name, width=1400):
    """A screenshot of a whole admin page (HTML as the test client got it),
    named `name`.png in screenshots_dir(). The page is measured first, so
    that the picture is as tall as the page (nothing cut off at the bottom),
    and it must fit the window's width (nothing cut off at the side)."""
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / f"{name}.html"
        # A file has no Content-Type header to name its charset.
        html = static_files_inline(html).replace("<head>", '<head><meta charset="utf-8">', 1)
        page.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        dom = dump_dom(page.as_uri(), f"--window-size={width},600")
        size = re.search(r'data-page-size="(\d+)x(\d+)"', dom)
        assert size, "the page did not finish loading"
        page_width, page_height = map(int, size.groups())
        path = screenshot(page.as_uri(), screenshots_dir() / f"{name}.png", width, page_height)
    assert png_size(path) == (width, page_height)
    assert page_width <= width, f"{name} is {page_width} px wide in a {width} px window: something overflows"
    clipped = re.search(r'data-clipped="([^"]*)"', dom)[1]
    assert not clipped, f"{name}: these boxes cut their content off: {clipped}"
    return path


def dump_dom(url, *args):
    """The page's DOM after its scripts ran."""
    return chromium(url, "--dump-dom", *args)


def png_size(path):
    """(width, height) from a PNG's header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
