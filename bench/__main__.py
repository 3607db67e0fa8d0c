"""``python -m bench``: run the benchmark suite and write its report.

Run it from the repository root (``bash bench/run.sh`` does, after installing what is
missing). Results go to ``bench/results/<time>.json`` and ``.md`` and the Markdown is
printed; ``--report FILE.json`` re-renders a saved run without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from . import report
from .suite import QUICK, Config, run_suite, to_json

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=10 only, fewer repetitions")
    parser.add_argument("--sizes", help="lab sizes, e.g. 10,50,100,250 (default)")
    parser.add_argument("--reps", help="repetitions per size, e.g. 5,4,3,2 (default)")
    parser.add_argument("--no-ansible", action="store_true", help="leave ansible-playbook out")
    parser.add_argument("--no-real", action="store_true", help="skip the real-release part")
    parser.add_argument("--no-profile", action="store_true", help="skip the sampled deploy")
    parser.add_argument(
        "--patches",
        default="known_hosts",
        help="';'-separated bench/patched.py patch sets to time as extra contenders, e.g. "
        "'known_hosts;known_hosts,switch=0.0005' ('' for none)",
    )
    parser.add_argument("--jobs", help="only these jobs, e.g. deploy,status")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--report", metavar="JSON", help="re-render a saved run and exit")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    config = QUICK if args.quick else Config()
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
        reps = tuple(int(r) for r in args.reps.split(",")) if args.reps else (3,) * len(sizes)
        if len(reps) != len(sizes):
            raise SystemExit("--reps needs one number per size")
        config = replace(config, sizes=sizes, reps=reps)
    elif args.reps:
        reps = tuple(int(r) for r in args.reps.split(","))
        if len(reps) != len(config.sizes):
            raise SystemExit("--reps needs one number per size")
        config = replace(config, reps=reps)
    if any(n < 1 or n > 250 for n in config.sizes) or any(r < 1 or r > 50 for r in config.reps):
        raise SystemExit("sizes must be 1..250 and repetitions 1..50")
    return replace(
        config,
        with_ansible=not args.no_ansible,
        real_hosts=0 if args.no_real else config.real_hosts,
        profile=not args.no_profile,
        patches=tuple(p for p in args.patches.split(";") if p),
        jobs=tuple(args.jobs.split(",")) if args.jobs else config.jobs,
        memory=not args.no_memory,
    )


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.report:
        print(report.render(json.loads(Path(args.report).read_text())), end="")
        return 0
    command = os.environ.get("BENCH_COMMAND") or shlex.join(["python", "-m", "bench", *argv])

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = run_suite(config_from(args), command, log)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / time.strftime("%Y%m%d-%H%M%S")
    text = to_json(results)
    stem.with_suffix(".json").write_text(text)
    markdown = report.render(json.loads(text))
    stem.with_suffix(".md").write_text(markdown)
    print(markdown, end="")
    log(f"results: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
