"""Where a tool run's wall time goes: a sampling profiler around the ``invoke`` CLI.

``python -m bench.sampler OUT.json -- deploy --phase 1 ...`` runs the tasks exactly as
``invoke`` does, in-process, while a thread records every other thread's stack every few
milliseconds. Each sample is put in one category by the innermost frame that names a known
place (an import, the ledger's SQLite calls, waiting on a remote command, paramiko's crypto
and packet code, ...). The report is, per kind of thread, the share of samples per category:
what dominates, not a precise profile. The sampling itself costs a few percent of one core.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

INTERVAL = 0.004
MAX_SAMPLES = 150_000  # ten minutes at the interval: the loop is bounded

#: (path fragment, function or "*", category), tried from the innermost frame outwards.
RULES: tuple[tuple[str, str, str], ...] = (
    ("importlib/_bootstrap", "*", "import"),
    ("<frozen importlib", "*", "import"),
    ("rollout/ledger/", "*", "ledger (SQLite)"),
    ("rollout/transport/ssh.py", "_collect", "waiting for the remote command"),
    ("paramiko/packet.py", "read_all", "idle: waiting for packets"),
    ("paramiko/", "*", "paramiko (connect, crypto, packets)"),
    ("cryptography/", "*", "paramiko (connect, crypto, packets)"),
    ("fabric/", "*", "fabric"),
    ("jinja2/", "*", "jinja2 templates"),
    ("rich/", "*", "terminal report"),
    ("rollout/report.py", "*", "terminal report"),
    ("yaml/", "*", "YAML loading"),
    ("concurrent/futures/", "*", "idle: waiting on futures, queues, locks"),
    ("threading.py", "*", "idle: waiting on futures, queues, locks"),
    ("queue.py", "*", "idle: waiting on futures, queues, locks"),
    ("rollout/", "*", "rollout logic"),
    ("invoke/", "*", "invoke"),
)


def categorize(frame: FrameType | None) -> str:
    """The category of a stack, from its innermost frame outwards."""
    while frame is not None:
        path = frame.f_code.co_filename
        name = frame.f_code.co_name
        for fragment, function, category in RULES:
            if fragment in path and function in ("*", name):
                return category
        frame = frame.f_back
    return "other"


def role(thread: threading.Thread | None) -> str:
    if thread is None:
        return "other"
    if thread is threading.main_thread():
        return "main"
    if thread.name.startswith("ThreadPoolExecutor"):
        return "pool workers"
    if type(thread).__module__.startswith("paramiko"):
        return "paramiko transports"
    return "other"


class Sampler:
    """Counts (thread role, category) every :data:`INTERVAL` seconds until stopped."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        me = threading.get_ident()
        for _ in range(MAX_SAMPLES):
            threads = {t.ident: t for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self.counts[(role(threads.get(ident)), categorize(frame))] += 1
            self.samples += 1
            if self._stop.wait(INTERVAL):
                return


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m bench.sampler OUT.json -- TASK [ARGS...]", file=sys.stderr)
        return 2
    out = Path(argv[0])
    sampler = Sampler()
    started = time.perf_counter()
    sampler.start()
    code = 0
    try:
        from invoke.main import program

        program.run(["invoke", *argv[2:]], exit=False)
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sampler.stop()
    wall = time.perf_counter() - started
    report = {
        "wall_seconds": wall,
        "samples": sampler.samples,
        "interval": INTERVAL,
        "counts": [
            {"role": r, "category": c, "samples": n} for (r, c), n in sampler.counts.most_common()
        ],
    }
    out.write_text(json.dumps(report, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
