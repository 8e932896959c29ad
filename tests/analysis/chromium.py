"""A real headless Chromium (Debian's ``chromium``, installed by ``.ci/run``) looking at a page.

``page_images`` loads a copy of the page (beside it, so relative image paths resolve) with one
script added that, once the page has loaded, writes every image's ``src``, ``complete`` and
``naturalWidth`` into an attribute of ``<body>``; ``--dump-dom`` prints the DOM after the load.
``screenshot`` renders the page itself to a PNG.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html import unescape
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_S = 120
_PROBE = ('<script>window.addEventListener("load", () => document.body.setAttribute("data-images", '
          'JSON.stringify([...document.images].map(i => [i.getAttribute("src"), i.complete, i.naturalWidth]))));'
          '</script>')


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("the report tests need Debian's chromium (apt-get install -y chromium; .ci/run installs it)")
    return found


def _run(*args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="katoray-chromium-") as profile:
        result = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                                text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def page_images(page: Path) -> tuple[list[list], str]:
    """([src, complete, naturalWidth] of every image, the DOM) as Chromium sees the page."""
    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _run("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    found = re.search(r'data-images="([^"]*)"', dom)
    assert found, f"the page's load event never came (no data-images in the DOM):\n{dom[:2000]}"
    return json.loads(unescape(found.group(1))), dom


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400) -> Path:
    _run(f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri())
    assert out.exists(), f"chromium wrote no screenshot of {page}"
    return out
