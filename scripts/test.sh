#!/usr/bin/env bash
# The whole test suite: lint, types, unit tests, then end-to-end tests against a private lab
# of real sshd + Elixir release hosts (started and stopped by the tests themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check rollout rollout_lab tasks.py tests bench
.venv/bin/mypy
# Tests mostly wait on SSH, BEAM boots and soak clocks, not on CPU: three workers, each
# owning whole test files (a file shares one lab) and its own range of lab ports.
exec .venv/bin/pytest -p no:cacheprovider -n 3 --dist loadfile "$@"
