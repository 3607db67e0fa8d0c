#!/usr/bin/env bash
# The demo: bring up 3 lab hosts, deploy phases 1 to 3 with per-host results, show status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export ROLLOUT_LEDGER=.rollout/demo-ledger.db
rm -f "$ROLLOUT_LEDGER" "$ROLLOUT_LEDGER"-wal "$ROLLOUT_LEDGER"-shm
inv=.venv/bin/invoke
$inv lab.up --hosts 3
# The lab has no service source tree: the readiness checklist scans a sample one.
# Phase 3 is gated on a backup taken after phase 2, as the runbook says.
for phase in 1 2 3; do
  [ "$phase" = 3 ] && $inv backup
  $inv deploy --phase "$phase" --yes --no-wait --source tests/data/checks/good
done
$inv status
