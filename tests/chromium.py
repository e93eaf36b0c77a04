"""Headless Chromium for the tests that look at pages as a person would."""

import shutil
import subprocess
import tempfile

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


def dump_dom(url):
    """The page's DOM after its scripts ran."""
    return chromium(url, "--dump-dom")


def png_size(path):
    """(width, height) from a PNG's header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
