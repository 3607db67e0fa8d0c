"""The remote side: the shell scripts a backup and a restore run on a host, and their output.

Each script is ``sh -c SCRIPT NAME ARGS...``: the arguments never pass through a shell
string, and the state paths are given relative to ``/`` (:func:`relative_path`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import CommandTimeout, UsageError
from ..executor import Executor
from ..transport.base import CommandResult
from .model import SHA256_RE

TMP_PATH_RE = re.compile(r"^/[A-Za-z0-9._/-]+$")

#: Base64 characters sent per upload command. The whole remote command line reaches the
#: host's login shell as one argument, which Linux caps at 128 KiB (MAX_ARG_STRLEN).
UPLOAD_CHUNK = 64 * 1024
MARK = "ROLLOUT-ARCHIVE/1"

#: Archives the state paths (relative to /, given as arguments) into a temp file, then
#: prints "ROLLOUT-ARCHIVE/1 <sha256> <size>" and the archive as one base64 line. The file
#: makes the checksum cover exactly the bytes sent, and tar's own exit status count.
ARCHIVE_SCRIPT = """set -eu
t=$(mktemp)
trap 'rm -f "$t"' EXIT
trap 'exit 143' HUP INT TERM
tar -C / -czf "$t" -- "$@"
sum=$(sha256sum < "$t")
size=$(wc -c < "$t")
printf '%s %s %s\\n' ROLLOUT-ARCHIVE/1 "${sum%% *}" $size
base64 -w0 < "$t"
"""

#: Appends one base64 chunk ($2) to the upload file ($1).
APPEND_SCRIPT = 'printf %s "$2" >> "$1"'

#: Decodes the uploaded base64 file ($1), checks the archive's SHA-256 against $2, extracts
#: it under /; the upload file is removed either way.
EXTRACT_SCRIPT = """set -eu
t=$(mktemp)
trap 'rm -f "$t" "$1"' EXIT
trap 'exit 143' HUP INT TERM
base64 -d < "$1" > "$t"
sum=$(sha256sum < "$t")
if [ "${sum%% *}" != "$2" ]; then
  echo "the uploaded archive's sha256 is ${sum%% *}, not $2" >&2
  exit 3
fi
tar -C / -xzf "$t"
"""

#: The SHA-256 of every regular file under the state paths (relative to /, as arguments).
LIST_SCRIPT = 'cd / && find "$@" -type f -exec sha256sum -- {} +'


def run_command(ex: Executor, name: str, argv: Sequence[str], timeout: float) -> CommandResult:
    result = ex.backend.run(name, argv, timeout=timeout)
    if result.timed_out:
        raise CommandTimeout(name, f"{argv[0]} did not finish within {timeout:.0f}s")
    return result


def relative_path(path: str, host: str) -> str:
    """A state path made relative to / for ``tar -C /``; refuses '..' and anything odd."""
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts or not path.strip("/"):
        raise UsageError(
            f"state path {path!r} of host {host} must be an absolute path below / with no '..'",
            hint="fix state_paths in the inventory",
        )
    return "/".join(p for p in parts if p and p != ".")


def parse_sums(text: str) -> dict[str, str]:
    """``sha256sum`` lines -> {path: digest}; undoes its escaping of \\ and newlines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        escaped = line.startswith("\\")
        if escaped:
            line = line[1:]
        digest, sep, name = line.partition("  ")
        if not sep or not SHA256_RE.match(digest):
            continue
        if escaped:
            name = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), name)
        out[name] = digest
    return out
