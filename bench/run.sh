#!/usr/bin/env bash
# The benchmark suite in one command: installs what it needs (the project's .venv, GNU time,
# ansible-core in bench/.venv-ansible), then runs `python -m bench` with the given options.
#   bash bench/run.sh            # N = 10, 50, 100, 250 stub hosts + N = 5 real releases (~20 min)
#   bash bench/run.sh --quick    # N = 10 only, fewer repetitions (~3 min)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ ! -x /usr/bin/time ]; then
  [ "$(id -u)" = 0 ] || { echo "bench: install GNU time (apt-get install time)" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends time >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends time >/dev/null; }
fi
export BENCH_COMMAND="bash bench/run.sh${1+$(printf " %q" "$@")}"
exec .venv/bin/python -m bench "$@"
