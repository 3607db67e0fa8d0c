"""Host output: capped in bytes and cleaned of secrets before it goes anywhere.

A host decides what it prints, so nothing it prints may cost the controller unbounded memory
or reach the terminal, the ``--json`` events or the ledger unchecked. Three bounds, all in
bytes (a single 20 MB line is as large as 20 MB of lines):

* :class:`Capture` holds what the transport reads from one stream of one command: the first
  and the last half of :data:`MAX_OUTPUT_BYTES` (console calls) or
  :data:`MAX_COMMAND_OUTPUT_BYTES` (commands: backup archives), the middle counted and dropped;
* :func:`clip_tail` bounds the tail an error message quotes (:data:`TAIL_BYTES`);
* :func:`clip` bounds every string an event carries (:data:`FIELD_BYTES`), so events, the
  ledger rows made from them and the terminal lines are bounded too.

:class:`Redactor` replaces every secret value the tool knows (``release_env`` values such as
``RELEASE_COOKIE``, the webhook and metrics URLs) with ``<redacted>`` in host output, as the
transport hands it on: a release script that echoes its environment (``set -x`` in
``env.sh``) shows the cookie to nobody. Values shorter than :data:`MIN_SECRET_BYTES` are not
redacted (they would match ordinary text); use long secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Per stream of one console call (flags, health): far more than any real answer.
MAX_OUTPUT_BYTES = 1 << 20
#: Per stream of one command (``Backend.run``): a state backup's base64 archive fits.
MAX_COMMAND_OUTPUT_BYTES = 64 << 20
#: What an error message quotes of a command's output.
TAIL_BYTES = 2000
#: The longest string an event field (message or data) carries.
FIELD_BYTES = 8192
#: Secret values shorter than this are not searched for in output.
MIN_SECRET_BYTES = 6
REDACTED = "<redacted>"


class Capture:
    """One stream's bytes, bounded: the first half of ``limit`` and the latest half."""

    def __init__(self, limit: int) -> None:
        self.limit = max(2, limit)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail += chunk
        keep = self.limit - self.limit // 2
        if len(self.tail) > keep:
            cut = len(self.tail) - keep
            self.dropped += cut
            del self.tail[:cut]

    @property
    def size(self) -> int:
        return len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.dropped:
            return bytes(self.head + self.tail).decode("utf-8", "replace")
        return (
            bytes(self.head).decode("utf-8", "replace")
            + f"\n[... {self.dropped} bytes of output dropped ...]\n"
            + bytes(self.tail).decode("utf-8", "replace")
        )


def clip(text: str, limit: int = FIELD_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (plus a note of how much was cut)."""
    if len(text) <= limit // 4:  # cheap: no character is more than 4 bytes
        return text
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")
    return f"{kept}... [{len(data) - limit} bytes cut]"


def clip_tail(text: str, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` UTF-8 bytes of ``text``."""
    if len(text) <= limit // 4:
        return text
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return f"[{len(data) - limit} bytes cut] ..." + data[-limit:].decode("utf-8", "ignore")


def clip_data(value: Any, limit: int = FIELD_BYTES) -> Any:
    """``value`` with every string in it (keys too, lists and mappings walked) clipped."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, Mapping):
        return {(clip(k, limit) if isinstance(k, str) else k): clip_data(v, limit)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, tuple):
        return tuple(clip_data(v, limit) for v in value)
    if isinstance(value, list):
        return [clip_data(v, limit) for v in value]
    return value


class Redactor:
    """Replaces every known secret value in text with ``<redacted>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found = {s for s in secrets if len(s.encode("utf-8")) >= MIN_SECRET_BYTES}
        self._values = sorted(found, key=len, reverse=True)  # longest first: no partial leak

    def __bool__(self) -> bool:
        return bool(self._values)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text
