"""Open a page in headless Chromium as a person would, and keep what it showed.

The simplest robust way, chosen over the DevTools protocol: two plain ``chromium`` runs per
page, ``--dump-dom`` (the DOM after load, as HTML) and ``--screenshot`` (a PNG), both with
``--enable-logging=stderr --v=0``, which makes Chromium print every console message, uncaught
script error and Content-Security-Policy violation to stderr as a ``:CONSOLE`` line. The page
runs no script and loads nothing, so *any* console line is a failure: an error, or something
that tried to run or load. Flags are the ones a root container needs (no sandbox, no GPU) plus
everything that would make Chromium itself reach the network; each run gets a fresh profile.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
)  # fmt: skip
TIMEOUT = 90.0  # seconds for one Chromium run (the machine may be busy)


def chromium() -> str | None:
    """The Chromium binary (Debian's ``chromium``, or ``chromium-headless-shell``), if any."""
    return shutil.which("chromium") or shutil.which("chromium-headless-shell")


@dataclass(frozen=True)
class Opened:
    """What Chromium showed: the DOM after load, its console lines, and the screenshot."""

    dom: str
    console: tuple[str, ...]
    screenshot: Path


def _run(binary: str, extra: list[str], url: str) -> tuple[str, list[str]]:
    with tempfile.TemporaryDirectory(prefix="rollout-chromium-") as profile:
        proc = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def open_page(page: Path, screenshot: Path, *, width: int = 1280, height: int = 2400) -> Opened:
    """Load ``page`` from disk, dump its DOM and save a ``width`` x ``height`` screenshot."""
    binary = chromium()
    if binary is None:
        raise AssertionError("chromium is not installed: run scripts/bootstrap.sh (as root)")
    url = page.resolve().as_uri()
    dom, console = _run(binary, ["--dump-dom"], url)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    _, more = _run(binary, [f"--window-size={width},{height}", f"--screenshot={screenshot}"], url)
    if not screenshot.is_file() or screenshot.stat().st_size < 1000:
        raise AssertionError(f"chromium wrote no screenshot to {screenshot}")
    return Opened(dom, tuple(console + more), screenshot)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class DOM(HTMLParser):
    """The dumped DOM as a flat list of elements (with their own text) and the whole text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[Node] = []
        self._open: list[Node] = []
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.nodes.append(node)
        if tag not in ("meta", "link", "br", "img", "input", "hr", "wbr"):
            self._open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.nodes.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        for node in self._open:  # an element's text includes its descendants' (an SVG <title>)
            node.text += data

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def find(self, tag: str, **attrs: str) -> list[Node]:
        """Elements named ``tag`` whose attributes include ``attrs`` (``cls`` is ``class``,
        matched as one of the classes)."""
        found = []
        for node in self.nodes:
            if node.tag != tag:
                continue
            ok = True
            for key, want in attrs.items():
                if key == "cls":
                    ok = ok and want in node.attrs.get("class", "").split()
                else:
                    ok = ok and node.attrs.get(key.replace("_", "-")) == want
            if ok:
                found.append(node)
        return found
